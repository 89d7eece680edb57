"""Evalence settings, read from the environment (django-environ). Every variable is documented in .env.example.

Embedded defaults (no environment at all) give a working local instance: SQLite, in-process jobs and an in-memory
channel layer. With DEBUG=false the secure settings are on and missing production values stop start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from evalence.env import BASE_DIR, env, required, secret

DEBUG = env.bool("DEBUG", default=False)
TESTING = env.bool("EVALENCE_TESTING", default=False)

_secret_key = secret("SECRET_KEY")
if not _secret_key and (DEBUG or TESTING):
    # Development only: a fixed key keeps sessions across restarts. Never used with DEBUG=false.
    _secret_key = "django-insecure-evalence-development-key-do-not-use-in-production-0123456789"  # noqa: S105
SECRET_KEY = required("SECRET_KEY", _secret_key, "when DEBUG is false")

if DEBUG or TESTING:
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
else:
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        required("ALLOWED_HOSTS", None, "when DEBUG is false (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # must come first: makes runserver serve ASGI (websockets included)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "django_prometheus",
    "channels",
    "evalence",
    "accounts",
    "promptbank",
    "firewall",
    "testing",
    "analytics",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "evalence.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "evalence.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "evalence.middleware.ActiveOrganizationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "evalence.urls"
WSGI_APPLICATION = "evalence.wsgi.application"
ASGI_APPLICATION = "evalence.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "evalence.context_processors.tenancy",
            ],
        },
    },
]

# --- Database: PostgreSQL through DATABASE_URL (psycopg 3), a local SQLite file when unset. ---
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Jobs run on background threads without Redis: wait for locks instead of failing, and take the write lock up
    # front so two writers never deadlock on an upgrade from a read lock.
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    # The pool checks a connection before lending it; without one, Django checks at the start of each request.
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # RQ's worker forks a work horse per job, and a psycopg pool (its connections and threads) does not survive a
    # fork: worker processes keep plain per-process connections unless DATABASE_POOL says otherwise.
    _forking_worker = len(sys.argv) > 1 and sys.argv[1] == "rqworker"
    if env.bool("DATABASE_POOL", default=not _forking_worker):
        # Requests run on a web process's worker threads (evalence/asgi.py, ASGI_SYNC_THREADS), and Django's
        # connections belong to a thread: a process-wide psycopg pool lends connections to whichever thread asks and
        # takes them back at the end of each request, so idle threads hold none. Django requires CONN_MAX_AGE=0 with
        # it (closing returns the connection).
        if _db.get("CONN_MAX_AGE") or env.int("DATABASE_CONN_MAX_AGE", default=0):
            raise ImproperlyConfigured(
                "DATABASE_CONN_MAX_AGE cannot be used with the connection pool; unset it, or set DATABASE_POOL=false"
            )
        _pool_min = env.int("DATABASE_POOL_MIN_SIZE", default=2)
        _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=10)
        if not 0 <= _pool_min <= _pool_max or _pool_max < 1:
            raise ImproperlyConfigured(
                f"DATABASE_POOL_MIN_SIZE ({_pool_min}) and DATABASE_POOL_MAX_SIZE ({_pool_max}) need "
                "0 <= min <= max and max >= 1"
            )
        _db["CONN_MAX_AGE"] = 0
        # Per process: size max_size so that (web workers + job processes) x max_size stays under the server's
        # max_connections. A request waits up to `timeout` seconds for a free connection, then fails loudly.
        _db["OPTIONS"]["pool"] = {
            "min_size": _pool_min,
            "max_size": _pool_max,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    else:
        _db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    if os.environ.get("DATABASE_TEST_NAME"):
        _db["TEST"] = {"NAME": os.environ["DATABASE_TEST_NAME"]}
IS_SQLITE = _db["ENGINE"] == "django.db.backends.sqlite3"
# Threads per web process that run requests' synchronous code (evalence/asgi.py): one request at a time each. More
# than the database pool lends would only queue on the pool; fewer keeps the GIL from being fought over.
ASGI_SYNC_THREADS = env.int(
    "ASGI_SYNC_THREADS", default=min(8, _db.get("OPTIONS", {}).get("pool", {}).get("max_size", 8))
)
if ASGI_SYNC_THREADS < 1:
    raise ImproperlyConfigured(f"ASGI_SYNC_THREADS must be at least 1, not {ASGI_SYNC_THREADS}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "analytics:overview"
LOGOUT_REDIRECT_URL = "accounts:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files: served by whitenoise from this repository and installed packages (no CDN). ---
STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "analytics.finders.PlotlyFinder",  # the plotly package's plotly.min.js as vendor/plotly.min.js
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (DEBUG or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# --- Redis: jobs, cache and channel layer each get their own database of the same server. ---
REDIS_URL = secret("REDIS_URL") or ""


def _redis_db_url(url: str, offset: int) -> str:
    """The same server as REDIS_URL, database number + offset, so jobs, cache and channels never share keys."""
    parts = urlsplit(url)
    try:
        base = int(parts.path.lstrip("/") or 0)
    except ValueError:
        raise ImproperlyConfigured(f"REDIS_URL has an invalid database number: {parts.path!r}") from None
    return urlunsplit(parts._replace(path=f"/{base + offset}"))


if REDIS_URL:
    if urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://")
    REDIS_CACHE_URL = env.str("REDIS_CACHE_URL", default=_redis_db_url(REDIS_URL, 1))
    REDIS_CHANNELS_URL = env.str("REDIS_CHANNELS_URL", default=_redis_db_url(REDIS_URL, 2))
    CACHES = {
        "default": {
            "BACKEND": "evalence.cache.RedisCache",
            "LOCATION": REDIS_CACHE_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="evalence"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_CHANNELS_URL], "prefix": env.str("CHANNELS_PREFIX", default="evalence")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "evalence"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

JOB_QUEUES = ("default", "testing", "pipeline")
RQ_QUEUES = {
    name: {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": env.int("JOB_TIMEOUT", default=3600)}
    for name in JOB_QUEUES
}
# evalence.jobs.dispatch already waits for the commit; django-rq must enqueue at once when it is called.
RQ = {"COMMIT_MODE": "auto"}
# Without Redis, jobs run in-process on a background thread (evalence.jobs).
JOBS_BACKEND = "rq" if REDIS_URL else "thread"
JOBS_THREAD_WORKERS = env.int("JOBS_THREAD_WORKERS", default=2)
JOBS_THREAD_EAGER = False  # tests only: run in-process jobs inline at commit

# --- Sessions and security ---
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG and not TESTING:
    # Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and scrapers talk plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# --- Uploads and API limits ---
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)

# --- REST framework ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # API keys first: their `authenticate_header` makes unauthenticated requests answer 401, not 403.
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["evalence.api.permissions.TenantPermission"],
    "DEFAULT_PARSER_CLASSES": ["evalence.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "evalence.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["evalence.api.throttling.PrincipalRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"principal": env.str("API_THROTTLE_RATE", default="1200/minute")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "evalence.api.exceptions.api_exception_handler",
    "DEFAULT_VERSIONING_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Evalence API",
    "DESCRIPTION": "Red-team, guard and learn: the Evalence REST API. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` field with different choices: name each enum after its meaning.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "evalence.jobs.JobStatus",
        "SubmissionStatusEnum": "promptbank.choices.SubmissionStatus",
        "DecisionEnum": "firewall.choices.Decision",
        "FirewallSeverityEnum": "firewall.filters.SEVERITY_CHOICES",
        "SeverityEnum": "promptbank.choices.Severity",
        "MessageRoleEnum": "firewall.api.serializers.MESSAGE_ROLES",
        "RoleEnum": "accounts.choices.Role",
        "TestVerdictEnum": "testing.choices.Verdict",
        "OverrideVerdictEnum": "testing.choices.OVERRIDE_VERDICTS",
        "TargetKindEnum": "testing.choices.TargetKind",
        "ResultKindEnum": "testing.choices.ResultKind",
        "TestSessionStatusEnum": "testing.choices.SessionStatus",
    },
}

# --- Email (invitations, scheduled reports). Console by default; set EMAIL_URL for SMTP. ---
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Evalence <no-reply@evalence.local>")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Observability ---
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
METRICS_TOKEN = secret("METRICS_TOKEN") or ""
PROMETHEUS_EXPORT_MIGRATIONS = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "evalence.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "evalence.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "rq.worker": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- Evalence ---
API_KEY_LAST_USED_RESOLUTION_S = env.int("API_KEY_LAST_USED_RESOLUTION_S", default=60)
# How long a web process remembers a key that authenticated (accounts/authentication.py); 0 looks it up every time.
# A revoked key stops working at once in the process that revoked it, and within this many seconds in the others.
API_KEY_CACHE_S = env.float("API_KEY_CACHE_S", default=5.0)
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
CSRF_FAILURE_VIEW = "evalence.errors.csrf_failure"

# --- Prompt bank ---
# Uploaded import files are stored here until their ingestion run has read them.
PROMPTBANK_UPLOAD_DIR = Path(env.str("PROMPTBANK_UPLOAD_DIR", default=str(Path(str(MEDIA_ROOT)) / "imports")))
PROMPTBANK_MAX_UPLOAD_BYTES = env.int("PROMPTBANK_MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
# Multipart uploads to these API paths may be larger than API_MAX_BODY_BYTES (they stream to disk, not memory).
API_UPLOAD_LIMITS = {"/api/v1/promptbank/imports/": PROMPTBANK_MAX_UPLOAD_BYTES}
# A folder watched by a scheduled job: files dropped here are imported into the global bank (or the organization
# named by a sub-folder with its slug), then moved to `processed/` or `failed/` beside them.
PROMPTBANK_DROP_DIR = env.str("PROMPTBANK_DROP_DIR", default="")
# HTTP JSON feeds polled by the scheduled job: `URL` or `URL|org-slug`, comma-separated.
PROMPTBANK_FEED_URLS = env.list("PROMPTBANK_FEED_URLS", default=[])
PROMPTBANK_FEED_TIMEOUT_S = env.float("PROMPTBANK_FEED_TIMEOUT_S", default=30.0)
PROMPTBANK_POLL_INTERVAL_S = env.int("PROMPTBANK_POLL_INTERVAL_S", default=300)
PROMPTBANK_BATCH_SIZE = env.int("PROMPTBANK_BATCH_SIZE", default=500)
# Near-duplicate threshold (0-1): a prompt whose similarity to an earlier one (MinHash/LSH finds the candidates; close
# calls are checked exactly on character shingles and words) reaches it is stored as that prompt's near duplicate.
PROMPTBANK_NEAR_DUPLICATE_THRESHOLD = env.float("PROMPTBANK_NEAR_DUPLICATE_THRESHOLD", default=0.8)

# --- Firewall ---
# Key for secrets stored encrypted (webhook secrets, model-endpoint keys); SECRET_KEY when unset. Comma-separate keys
# to rotate: the first encrypts, every one decrypts.
FIELD_ENCRYPTION_KEY = secret("FIELD_ENCRYPTION_KEY") or ""
# How long (seconds) a process trusts its loaded signatures/classifier/policy before checking for a newer version.
FIREWALL_REFRESH_S = env.float("FIREWALL_REFRESH_S", default=5.0)
# Organizations' own classifiers (trained with their accepted findings) kept loaded per process, least recently
# loaded dropped first; the shared classifier is always kept.
FIREWALL_CLASSIFIER_CACHE = env.int("FIREWALL_CLASSIFIER_CACHE", default=16)
# Learned signatures (firewall/learned.py): an organization's accepted findings as phrase rules of its firewall, the
# newest this many (they cost one pass over an input's words however many there are).
FIREWALL_LEARNED_SIGNATURES_MAX = env.int("FIREWALL_LEARNED_SIGNATURES_MAX", default=2000)
# Conversation context: how many recent turns of a session are scanned together, and for how long they are kept.
FIREWALL_CONTEXT_TURNS = env.int("FIREWALL_CONTEXT_TURNS", default=6)
FIREWALL_CONTEXT_TTL_S = env.int("FIREWALL_CONTEXT_TTL_S", default=1800)
FIREWALL_BATCH_MAX = env.int("FIREWALL_BATCH_MAX", default=100)
# Webhooks for blocked events: attempts and the first backoff (doubling) of the delivery job.
FIREWALL_WEBHOOK_ATTEMPTS = env.int("FIREWALL_WEBHOOK_ATTEMPTS", default=5)
FIREWALL_WEBHOOK_BACKOFF_S = env.float("FIREWALL_WEBHOOK_BACKOFF_S", default=2.0)
FIREWALL_WEBHOOK_TIMEOUT_S = env.float("FIREWALL_WEBHOOK_TIMEOUT_S", default=5.0)
# Webhook URLs whose host is (or resolves to) a loopback, private, link-local or otherwise non-public address are
# refused (SSRF); true allows them, for a receiver on your own network (and the tests' loopback receiver).
FIREWALL_WEBHOOK_ALLOW_PRIVATE = env.bool("FIREWALL_WEBHOOK_ALLOW_PRIVATE", default=False)
# Scheduled retraining of the classifier (firewall/retrain.py): every FIREWALL_RETRAIN_INTERVAL_S seconds (0: off) a
# worker trains on the bank and activates the new version only if it is no worse than the active one; a run may take
# at most FIREWALL_RETRAIN_TIMEOUT_S seconds.
FIREWALL_RETRAIN_INTERVAL_S = env.int("FIREWALL_RETRAIN_INTERVAL_S", default=86400)
FIREWALL_RETRAIN_TIMEOUT_S = env.int("FIREWALL_RETRAIN_TIMEOUT_S", default=3600)
# After the shared classifier, each organization with prompts of its own (accepted findings and reports) gets its own
# version trained on the shared bank plus those prompts (one job per organization); false trains the shared one only.
FIREWALL_RETRAIN_ORGANIZATIONS = env.bool("FIREWALL_RETRAIN_ORGANIZATIONS", default=True)
# Shadow mode (firewall/shadow.py): false skips scoring the version in shadow on live traffic altogether; examples of
# each kind of disagreement the comparison page lists.
FIREWALL_SHADOW_ENABLED = env.bool("FIREWALL_SHADOW_ENABLED", default=True)
FIREWALL_SHADOW_EXAMPLES = env.int("FIREWALL_SHADOW_EXAMPLES", default=10)

# --- Analytics rollups (analytics/rollups.py) ---
# The rollup job runs every ANALYTICS_ROLLUP_INTERVAL_S and rolls up hours that ended at least ANALYTICS_ROLLUP_GRACE_S
# ago (evaluations still being written then are caught); it writes ANALYTICS_ROLLUP_CHUNK_HOURS hours per transaction.
ANALYTICS_ROLLUP_INTERVAL_S = env.int("ANALYTICS_ROLLUP_INTERVAL_S", default=300)
ANALYTICS_ROLLUP_GRACE_S = env.int("ANALYTICS_ROLLUP_GRACE_S", default=60)
ANALYTICS_ROLLUP_CHUNK_HOURS = env.int("ANALYTICS_ROLLUP_CHUNK_HOURS", default=24)
# seed_demo's generated history (analytics/seed.py): evaluations and red-team results over the last 30 days.
DEMO_HISTORY_EVALUATIONS = env.int("DEMO_HISTORY_EVALUATIONS", default=20_000)
DEMO_HISTORY_RESULTS = env.int("DEMO_HISTORY_RESULTS", default=3_600)

# --- Testing (red-team sessions) ---
# A running session's worker writes a heartbeat at least every TESTING_HEARTBEAT_S; one silent for
# TESTING_STALE_AFTER_S is taken as dead and re-queued (its pending items only).
TESTING_HEARTBEAT_S = env.float("TESTING_HEARTBEAT_S", default=2.0)
TESTING_STALE_AFTER_S = env.float("TESTING_STALE_AFTER_S", default=60.0)
# Live progress events per session are sent at most this often (the browser is never flooded).
TESTING_PROGRESS_INTERVAL_S = env.float("TESTING_PROGRESS_INTERVAL_S", default=0.5)
# Results are written in batches of up to this many rows (or every heartbeat, whichever comes first).
TESTING_WRITE_BATCH = env.int("TESTING_WRITE_BATCH", default=100)
# Where a session's HTTP runs: "auto" (a forked child process when the judges are all local and the worker runs no
# other thread, else a thread), "process" or "thread" (testing/runner.py).
TESTING_NETWORK_PROCESS = env.str("TESTING_NETWORK_PROCESS", default="auto")
if TESTING_NETWORK_PROCESS not in ("auto", "process", "thread"):
    raise ImproperlyConfigured(
        f"TESTING_NETWORK_PROCESS must be auto, process or thread, not {TESTING_NETWORK_PROCESS!r}"
    )
# Retries of one request: exponential backoff from this base, capped, with jitter; Retry-After wins when given.
TESTING_BACKOFF_BASE_S = env.float("TESTING_BACKOFF_BASE_S", default=0.5)
TESTING_BACKOFF_MAX_S = env.float("TESTING_BACKOFF_MAX_S", default=30.0)
# Successful attacks are offered to the prompt bank as submissions (source="testing") when a session ends.
TESTING_SUBMIT_FINDINGS = env.bool("TESTING_SUBMIT_FINDINGS", default=True)
# Every new bank release runs the firewall over its attack and benign prompts and records the figures on the release.
TESTING_RELEASE_REGRESSION = env.bool("TESTING_RELEASE_REGRESSION", default=True)
# Where the demo assistant answers; blank: a loopback server started inside the process that runs the session.
DEMO_ASSISTANT_URL = env.str("DEMO_ASSISTANT_URL", default="")

# --- Learning loop (blocked inputs and feedback into the bank) ---
# The harvest job runs every this many seconds (`firewall_harvest --schedule`), over blocked inputs newer than its
# cursor, read in batches of LEARNING_HARVEST_BATCH rows, stopping LEARNING_HARVEST_LAG_S seconds short of now (an
# evaluation stamped just before a pass may commit just after it).
LEARNING_HARVEST_INTERVAL_S = env.int("LEARNING_HARVEST_INTERVAL_S", default=600)
LEARNING_HARVEST_BATCH = env.int("LEARNING_HARVEST_BATCH", default=500)
LEARNING_HARVEST_LAG_S = env.float("LEARNING_HARVEST_LAG_S", default=30.0)
# Candidates at or above this similarity (character 3-grams or words, as the bank's near duplicates) are one cluster.
LEARNING_CLUSTER_THRESHOLD = env.float("LEARNING_CLUSTER_THRESHOLD", default=0.8)

# --- Analytics reports ---
# How often (seconds) the scheduler job looks for organization reports that are due and e-mails them.
ANALYTICS_REPORT_INTERVAL_S = env.int("ANALYTICS_REPORT_INTERVAL_S", default=3600)
