"""Settings for the test suite: the real settings, read with EVALENCE_TESTING=1.

`make test` points DATABASE_URL and REDIS_URL at PostgreSQL and Redis when they answer (pytest-django then creates a
throwaway `test_*` database); without them the suite runs on SQLite and in-process jobs.
"""

import os

os.environ["EVALENCE_TESTING"] = "1"
os.environ.setdefault("EVALENCE_READ_DOTENV", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from evalence.settings import *  # noqa: F403
from evalence.settings import REST_FRAMEWORK

# In-process jobs run inline at commit in tests, so a test sees their effect deterministically; the background-thread
# path has its own test that turns this off.
JOBS_THREAD_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"principal": "100000/minute"}}
# seed_demo's month of generated history, smaller: the tests that run seed_demo check its steps, not its volume
# (the screenshots use the full size).
DEMO_HISTORY_EVALUATIONS = 2_000
DEMO_HISTORY_RESULTS = 600
