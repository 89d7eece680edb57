"""The trained detectors' life cycle: training the classifier from the bank, versions and their activation, and the
per-process caches of the active classifier and of the similarity indexes (hot-swapped, no restart needed).

- `detector_train` fits a classifier on the active bank (`training_data`), stores it as a new `DetectorVersion`
  (artifact, SHA-256, held-out metrics, what it was trained on) and activates it per the `activate` rule.
- `detector_train(organization=org)` trains an organization's own version: the shared bank plus that organization's
  own prompts (`own_prompts`: its accepted findings and reports), so what one tenant's findings teach never reaches
  another tenant's model. `retrain_organizations` (firewall/retrain.py) trains them after the shared one.
- `active_classifier(organization_id)` is what the engine calls on every evaluation: the organization's own active
  version if it has one, else the shared one; a process-local copy, re-checked against the database at most every
  `FIREWALL_REFRESH_S` seconds (one indexed query for every scope), so web and worker processes pick up a new
  version by themselves. An artifact whose SHA-256 does not match its row is never loaded.
- `similarity_index(organization)` holds the known attacks (the global bank's, plus the organization's own). When
  `promptbank.signals.prompts_changed` fires (prompts ingested, a bank release activated) the scope is only marked
  stale, here and, through its stamp in Django's cache, in every other process (checked at most every
  `FIREWALL_REFRESH_S` seconds): the request that changed the bank does not pay for a rebuild. The next evaluation
  that needs the index rebuilds it, one thread per scope and process; meanwhile the others keep using the previous
  index, swapped for the new one only once it is complete (`StaleWhileRebuild`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Organization, User
from evalence.errors import ApplicationError, Conflict
from firewall.choices import DetectorStatus
from firewall.engine.classifier import Classifier, threat_of, train
from firewall.engine.similarity import Match, SimilarityIndex
from firewall.engine.types import Candidate, Finding
from firewall.models import DetectorVersion
from promptbank.choices import Label, LearningEventType, SubmissionStatus
from promptbank.models import Prompt, Submission
from promptbank.selectors import release_prompt_versions
from promptbank.signals import prompts_changed

logger = logging.getLogger("evalence.firewall")

ACTIVATE_RULES = ("auto", "force", "never")
# "auto" accepts a new version whose held-out recall is at most this much lower, and FPR this much higher, than the
# active version's (the same data and seed give the same figures; tiny differences are noise of the split).
RECALL_TOLERANCE = 0.005
FPR_TOLERANCE = 0.002
# On the benign set there is no tolerance: the new version may not block a single benign prompt (or accepted
# false-positive report) more than the active one does. Both are scored there, so this is not split noise.
BENIGN_FP_TOLERANCE = 0
MIN_PER_CLASS = 10


# --- training data --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankRow:
    id: str
    text: str
    label: int  # 1 = attack
    category: str


def _active_global_release() -> Any:
    from promptbank.models import BankRelease

    return BankRelease.objects.filter(organization__isnull=True, is_active=True).first()


def own_prompts(organization: Organization) -> Any:
    """The prompts that protect one organization beyond the shared bank: its own active prompts, and shared prompts
    it accepted from its own findings or reports (a finding whose text the shared bank already holds links to that
    prompt, which the active global release may not carry yet). Never another organization's private prompts."""
    accepted = Submission.objects.filter(
        organization=organization, status=SubmissionStatus.ACCEPTED, prompt__isnull=False
    ).values("prompt_id")
    return Prompt.objects.filter(
        Q(organization=organization) | Q(organization__isnull=True, pk__in=accepted), is_active=True
    ).order_by()


def bank_rows(*, organization: Organization | None = None) -> tuple[list[BankRow], str]:
    """The bank the detectors learn from, and a description of it: the active global release's prompts (as that
    release holds them) if there is one, else every active global prompt; plus the organization's own active
    prompts when one is given (never another organization's)."""
    rows: list[BankRow] = []
    release = _active_global_release()
    if release is not None:
        versions = release_prompt_versions(release)
        meta = Prompt.objects.filter(pk__in=list(versions)).values_list("pk", "label", "category")
        for pk, label, category in meta.iterator():
            rows.append(BankRow(str(pk), versions[pk][2], int(label == Label.ATTACK), category))
        described = f"global release {release.version}"
    else:
        prompts = Prompt.objects.filter(organization__isnull=True, is_active=True)
        for pk, text, label, category in prompts.values_list("pk", "text", "label", "category").iterator():
            rows.append(BankRow(str(pk), text, int(label == Label.ATTACK), category))
        described = "all active global prompts"
    if organization is not None:
        seen = {r.id for r in rows}  # a shared prompt it accepted may be in the release already: once is enough
        own = own_prompts(organization)
        for pk, text, label, category in own.values_list("pk", "text", "label", "category").iterator():
            if str(pk) not in seen:
                rows.append(BankRow(str(pk), text, int(label == Label.ATTACK), category))
        described += f" + {organization.slug}'s own prompts"
    # A stable order that follows the content, not the rows' random ids: the same prompts give the same held-out
    # split (and so comparable figures) in every database they are loaded into.
    rows.sort(key=lambda row: (hashlib.sha256(row.text.encode()).digest(), row.label, row.category, row.id))
    return rows, described


def training_data(*, organization: Organization | None = None) -> tuple[list[str], list[int], list[str]]:
    """The active bank as (texts, labels with attack = 1, categories); see `bank_rows`."""
    rows, _ = bank_rows(organization=organization)
    return [r.text for r in rows], [r.label for r in rows], [r.category for r in rows]


def bank_fingerprint(rows: list[BankRow]) -> str:
    """SHA-256 over what a training run reads (ids, labels, categories, texts): equal fingerprints train equal
    models with the same seed, so the scheduled retrain can skip an unchanged bank."""
    digest = hashlib.sha256()
    for r in rows:
        digest.update(f"{r.id}\t{r.label}\t{r.category}\t{_sha256(r.text.encode())}\n".encode())
    return digest.hexdigest()


# --- the benign set -------------------------------------------------------------------------------------------------


def benign_set(rows: list[BankRow] | None = None) -> tuple[list[str], int]:
    """The texts a new version must not block more of than the active one: the bank's benign prompts (as training
    reads them) plus every accepted false-positive report (feedback that went through the bank's review), normalized
    as the engine normalizes an input and de-duplicated. Returns (texts, how many came from reports only)."""
    from firewall.engine.normalize import normalize
    from promptbank.choices import SubmissionStatus
    from promptbank.models import Submission

    if rows is None:
        rows, _ = bank_rows()
    texts = {normalize(r.text).text for r in rows if not r.label}
    from_bank = len(texts)
    reports = Submission.objects.filter(
        status=SubmissionStatus.ACCEPTED,
        label=Label.BENIGN,
        source="firewall",
        metadata__feedback="false_positive",
    ).values_list("text", flat=True)
    for text in reports.iterator():
        texts.add(normalize(text).text)
    return sorted(texts), len(texts) - from_bank


def benign_false_positives(classifier: Classifier, texts: list[str]) -> int:
    """How many of the (normalized) benign texts the classifier alone would block at the default threshold."""
    from firewall.engine.classifier import BLOCK_SCORE

    return sum(1 for score in classifier.score(texts) if score >= BLOCK_SCORE)


def benign_figures(classifier: Classifier, texts: list[str], reports: int) -> dict[str, Any]:
    fp = benign_false_positives(classifier, texts)
    return {
        "prompts": len(texts),
        "false_positive_reports": reports,
        "false_positives": fp,
        "fpr": round(fp / len(texts), 4) if texts else 0.0,
    }


def benign_compare(candidate: Classifier, active: DetectorVersion, texts: list[str], reports: int) -> dict[str, Any]:
    """The candidate's and the active version's figures on the benign set (for the candidate's metrics). An active
    artifact that does not load cannot be compared: the figures say so, and only the held-out gate applies."""
    figures = benign_figures(candidate, texts, reports)
    try:
        current = load_version(active)
    except ApplicationError as exc:
        figures["active"] = {"version": active.version, "error": exc.message}
        return figures
    active_fp = benign_false_positives(current, texts)
    figures["active"] = {
        "version": active.version,
        "false_positives": active_fp,
        "fpr": round(active_fp / len(texts), 4) if texts else 0.0,
    }
    return figures


def _versions_of(organization_id: Any) -> Q:
    return Q(organization_id=organization_id) if organization_id is not None else Q(organization__isnull=True)


def active_version(organization: Organization | None = None, *, fallback: bool = True) -> DetectorVersion | None:
    """The active version that serves `organization`: its own if it has one, else (with `fallback`) the shared one.
    Without an organization: the shared one. The artifact is not loaded."""
    active = DetectorVersion.objects.filter(status=DetectorStatus.ACTIVE).defer("artifact")
    if organization is not None:
        own = active.filter(organization=organization).first()
        if own is not None or not fallback:
            return own
    return active.filter(organization__isnull=True).first()


def detector_gate(*, version: DetectorVersion) -> str:
    """Why a stored version may not replace the active one of its scope ("" when it may): the same two checks as
    "auto" training, on today's bank. Used when a shadow version is promoted."""
    active = active_version(version.organization)
    if active is None or active.pk == version.pk:
        return ""
    texts, reports = benign_set(bank_rows(organization=version.organization)[0])
    figures = benign_compare(load_version(version), active, texts, reports)
    return _compare(
        version.metrics or {}, active, _benign_problem(figures), other_data=version.organization_id is not None
    )


def _benign_problem(figures: dict[str, Any]) -> str:
    """Why the candidate fails the benign-set gate ("" when it passes or there was nothing to compare with)."""
    active = figures.get("active") or {}
    if "false_positives" not in active or figures["false_positives"] <= active["false_positives"] + BENIGN_FP_TOLERANCE:
        return ""
    return (
        f"benign-set false-positive rate {figures['fpr']:.4f} > {active['fpr']:.4f} "
        f"({figures['false_positives']} vs {active['false_positives']} of {figures['prompts']} benign prompts and "
        "accepted false-positive reports blocked)"
    )


# --- versions -------------------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_version(version: DetectorVersion) -> Classifier:
    """The classifier of a stored version, after checking the artifact against its recorded SHA-256."""
    data = bytes(version.artifact)
    if _sha256(data) != version.artifact_sha256:
        raise Conflict(f"Classifier v{version.version}: the artifact does not match its SHA-256; not loaded.")
    try:
        return Classifier.from_bytes(data, version=f"v{version.version}")
    except ValueError as exc:
        raise Conflict(f"Classifier v{version.version} cannot be loaded: {exc}") from None


def _record_event(version: DetectorVersion, event_type: str, action: str) -> None:
    from promptbank.services import learning_event_record

    learning_event_record(
        organization=version.organization,
        event_type=event_type,
        source=version,
        action=action,
        result={"version": version.version, "status": version.status, "metrics": _headline(version.metrics)},
    )


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    headline = {k: metrics.get(k) for k in ("precision", "recall", "f1", "fpr", "threshold")}
    benign = metrics.get("benign_set") or {}
    if benign:
        headline["benign_fpr"] = benign.get("fpr")
        headline["benign_prompts"] = benign.get("prompts")
    return headline


@transaction.atomic
def detector_activate(*, version: DetectorVersion, actor: User | None = None, reason: str = "") -> DetectorVersion:
    """Make `version` the active classifier of its scope (the shared one, or its organization's own; the previous
    one of that scope is retired). Every process switches to it within `FIREWALL_REFRESH_S` seconds."""
    version = DetectorVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == DetectorStatus.ACTIVE:
        return version
    if version.status == DetectorStatus.REJECTED:
        raise Conflict(f"Classifier v{version.version} was rejected and cannot be activated.")
    load_version(version)  # refuse an artifact that does not verify or load
    now = timezone.now()
    current = DetectorVersion.objects.select_for_update().filter(_versions_of(version.organization_id))
    current.filter(status=DetectorStatus.ACTIVE).update(status=DetectorStatus.RETIRED)
    version.status = DetectorStatus.ACTIVE
    version.activated_at = now
    actor_name = f" by {actor.email}" if actor is not None else ""
    version.reason = reason or f"Activated{actor_name}."
    version.save(update_fields=["status", "activated_at", "reason"])
    _record_event(version, LearningEventType.DETECTOR_ACTIVATED, f"{version_name(version)} activated")
    transaction.on_commit(_forget_classifier)
    return version


def version_name(version: DetectorVersion) -> str:
    """'classifier v3', or 'acme's own classifier v4'."""
    owner = f"{version.organization.slug}'s own " if version.organization_id else ""
    return f"{owner}classifier v{version.version}"


def _sampling_allowance(new: dict[str, Any], old: dict[str, Any], hits: str, misses: str) -> float:
    """How much worse a rate may look on a different held-out split before it counts as worse: 1.96 standard errors
    of the difference of two proportions (a two-sided 95% test), from the splits' own counts. 0 without counts."""
    n_new = int(new.get(hits, 0) or 0) + int(new.get(misses, 0) or 0)
    n_old = int(old.get(hits, 0) or 0) + int(old.get(misses, 0) or 0)
    if not n_new or not n_old:
        return 0.0
    pooled = (int(new.get(hits, 0) or 0) + int(old.get(hits, 0) or 0)) / (n_new + n_old)
    return 1.96 * math.sqrt(pooled * (1 - pooled) * (1 / n_new + 1 / n_old))


def _compare(
    new: dict[str, Any], active: DetectorVersion, benign_problem: str = "", *, other_data: bool = False
) -> str:
    """Why `new` metrics are worse than the active version's, or "" when they are not: held-out recall lower by more
    than RECALL_TOLERANCE, held-out false-positive rate higher by more than FPR_TOLERANCE, or (from
    `_benign_problem`) more of the benign set blocked. With `other_data` (an organization's own version, trained and
    split on more than the version it would replace), the held-out figures come from different splits, so a
    difference counts only beyond their sampling error; the benign set is scored by both, and stays strict."""
    old = active.metrics or {}
    recall_tolerance, fpr_tolerance = RECALL_TOLERANCE, FPR_TOLERANCE
    if other_data:
        recall_tolerance = max(recall_tolerance, _sampling_allowance(new, old, "tp", "fn"))
        fpr_tolerance = max(fpr_tolerance, _sampling_allowance(new, old, "fp", "tn"))
    problems = []
    if float(new.get("recall", 0.0)) < float(old.get("recall", 0.0)) - recall_tolerance:
        problems.append(f"held-out recall {float(new.get('recall', 0.0)):.4f} < {float(old['recall']):.4f}")
    if float(new.get("fpr", 1.0)) > float(old.get("fpr", 1.0)) + fpr_tolerance:
        problems.append(
            f"held-out false-positive rate (FPR) {float(new.get('fpr', 1.0)):.4f} > {float(old['fpr']):.4f}"
        )
    if benign_problem:
        problems.append(benign_problem)
    if not problems:
        return ""
    return f"Not activated: worse than the active v{active.version} ({'; '.join(problems)})."


def detector_train(
    *,
    actor: User | None = None,
    activate: str = "auto",
    seed: int = 0,
    organization: Organization | None = None,
    bank: tuple[list[BankRow], str] | None = None,
) -> DetectorVersion:
    """Train a classifier on the active bank, store it as a new version and activate it per `activate`:

    - "auto": only if it is no worse than the active version on held-out recall and FPR and blocks no more of the
      benign set (otherwise it stays a candidate, with the reason); the first version is always activated;
      an organization's own version is compared with the organization's active one, or, for its first, with the
      shared one it would replace for that organization (so it must earn its place too);
    - "force": activate whatever the figures;
    - "never": keep it as a candidate.

    Every run writes a `detector.trained` learning event with the figures (and `detector.activated` when it is
    activated). The fit and the scoring run outside the transaction (tens of seconds on a large bank); the row and
    the activation are atomic. `bank`: the rows `bank_rows(organization=organization)` gave, when the caller has
    read them already (the scheduled retrain, to see whether the bank changed).
    """
    if activate not in ACTIVATE_RULES:
        raise ApplicationError(f"activate must be one of {', '.join(ACTIVATE_RULES)}, not {activate!r}.")
    rows, described = bank if bank is not None else bank_rows(organization=organization)
    attacks = sum(r.label for r in rows)
    benign = len(rows) - attacks
    if attacks < MIN_PER_CLASS or benign < MIN_PER_CLASS:
        raise ApplicationError(
            f"The bank has {attacks} attack and {benign} benign prompts; training needs at least {MIN_PER_CLASS} of "
            "each (load the seed with `manage.py promptbank_seed`)."
        )
    started = time.perf_counter()
    classifier, metrics = train([r.text for r in rows], [r.label for r in rows], [r.category for r in rows], seed=seed)
    seconds = round(time.perf_counter() - started, 2)
    # The benign set: the new version's figures always; the active one's too when "auto" has to compare them.
    compared = active_version(organization)
    texts, reports = benign_set(rows)
    if activate == "auto" and compared is not None:
        metrics["benign_set"] = benign_compare(classifier, compared, texts, reports)
    else:
        metrics["benign_set"] = benign_figures(classifier, texts, reports)
    artifact = classifier.to_bytes()
    categories: dict[str, int] = {}
    for r in rows:
        categories[r.category] = categories.get(r.category, 0) + 1
    training = {
        "bank": described,
        "prompts": len(rows),
        "attacks": attacks,
        "benign": benign,
        "categories": dict(sorted(categories.items())),
        "data_sha256": bank_fingerprint(rows),
        "seed": seed,
        "seconds": seconds,
        "artifact_bytes": len(artifact),
        "model": "hashed character 3-5-grams (2^18 buckets), idf, logistic regression; harmful-intent head over "
        "100-character windows",
    }
    if organization is not None:
        training["own_prompts"] = own_prompts(organization).count()
    with transaction.atomic():
        number = (DetectorVersion.objects.aggregate(n=Max("version"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                version = DetectorVersion.objects.create(
                    version=number,
                    organization=organization,
                    status=DetectorStatus.CANDIDATE,
                    artifact=artifact,
                    artifact_sha256=_sha256(artifact),
                    metrics=metrics,
                    training=training,
                    created_by=actor,
                )
        except IntegrityError:
            raise Conflict(f"Another training stored v{number} at the same time; run it again.") from None
        _record_event(version, LearningEventType.DETECTOR_TRAINED, f"{version_name(version)} trained")
        active = active_version(organization)
        if activate == "never":
            version.reason = "Not activated (activate=never)."
        elif activate == "force":
            return detector_activate(version=version, actor=actor, reason="Activated (activate=force).")
        elif active is None:
            return detector_activate(version=version, actor=actor, reason="Activated: no version was active.")
        elif compared is None or active.pk != compared.pk:
            version.reason = (
                f"Not activated: v{active.version} became active while this version trained; compare again by "
                "training again (or activate it by hand)."
            )
        else:
            worse = _compare(
                metrics, active, _benign_problem(metrics["benign_set"]), other_data=organization is not None
            )
            replaced_shared = active.organization_id != version.organization_id
            shared = " (the shared classifier it replaces here)" if replaced_shared else ""
            if not worse:
                return detector_activate(
                    version=version,
                    actor=actor,
                    reason=f"Activated: no worse than v{active.version}{shared} on held-out recall and FPR, and "
                    "on the benign set.",
                )
            version.reason = worse
        version.save(update_fields=["reason"])
    return version


def organizations_with_own_prompts() -> list[Any]:
    """Ids of the organizations an own classifier is for: those with active prompts of their own or accepted
    submissions linked to shared prompts (`own_prompts`), and those whose own version is active (to retire it when
    nothing of their own is left)."""
    own = Prompt.objects.filter(organization__isnull=False, is_active=True)
    ids = set(own.values_list("organization_id", flat=True).distinct())
    ids |= set(
        Submission.objects.filter(
            status=SubmissionStatus.ACCEPTED, prompt__isnull=False, prompt__organization__isnull=True
        ).values_list("organization_id", flat=True)
    )
    ids |= set(
        DetectorVersion.objects.filter(status=DetectorStatus.ACTIVE, organization__isnull=False).values_list(
            "organization_id", flat=True
        )
    )
    ids.discard(None)
    return sorted(ids, key=str)


@transaction.atomic
def organization_classifier_retire(*, organization: Organization, reason: str) -> DetectorVersion | None:
    """Retire an organization's own active version (the shared one serves it again); None when it had none."""
    version = (
        DetectorVersion.objects.select_for_update()
        .filter(organization=organization, status=DetectorStatus.ACTIVE)
        .first()
    )
    if version is None:
        return None
    version.status = DetectorStatus.RETIRED
    version.reason = reason
    version.save(update_fields=["status", "reason"])
    _record_event(version, LearningEventType.DETECTOR_RETIRED, f"{version_name(version)} retired: {reason}")
    transaction.on_commit(_forget_classifier)
    return version


# --- the active classifier, per process -----------------------------------------------------------------------------


class _ClassifierCache:
    """This process's view of the versions in one status (active, or shadow): which version each scope has (the
    shared one under None, organizations with their own under their id), read in one query at most every
    FIREWALL_REFRESH_S seconds, and the classifiers loaded for the scopes asked about. Organizations' own models are
    kept for at most FIREWALL_CLASSIFIER_CACHE organizations per process (the least recently loaded go first; they
    load again from the database when next needed)."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.lock = threading.Lock()
        self.versions: dict[Any, tuple[int, str]] = {}  # scope -> (version, sha256) in the database
        self.serving: OrderedDict[Any, tuple[tuple[int, str], Classifier]] = OrderedDict()  # scope -> loaded
        self.failed: set[tuple[int, str]] = set()  # versions that did not verify or load: not tried again
        self.checked_at = float("-inf")


_classifier_cache = _ClassifierCache(DetectorStatus.ACTIVE)
_shadow_cache = _ClassifierCache(DetectorStatus.SHADOW)


def _forget_classifier() -> None:
    """Make this process re-check the active and shadow versions on its next call (other processes do within the
    interval)."""
    _classifier_cache.checked_at = float("-inf")
    _shadow_cache.checked_at = float("-inf")


def classifiers_changed() -> None:
    """After a version changed status (shadow started or stopped): re-check at this process's next evaluation."""
    _forget_classifier()


def _refresh(state: _ClassifierCache) -> None:
    """Re-read which version each scope has, if FIREWALL_REFRESH_S passed since the last read."""
    refresh = float(settings.FIREWALL_REFRESH_S)
    if time.monotonic() - state.checked_at < refresh:
        return
    with state.lock:
        if time.monotonic() - state.checked_at < refresh:  # another thread refreshed meanwhile
            return
        rows = DetectorVersion.objects.filter(status=state.status).values_list(
            "organization_id", "version", "artifact_sha256"
        )
        state.versions = {scope: (version, sha) for scope, version, sha in rows}
        for scope in [scope for scope in state.serving if scope not in state.versions]:
            del state.serving[scope]  # that scope has no version in this status any more
        state.checked_at = time.monotonic()


def _load(state: _ClassifierCache, scope: Any, key: tuple[int, str]) -> Classifier | None:
    """Load `key` for `scope` (under the lock). A version that fails to verify leaves what the scope served before
    in use, or nothing (the caller falls back to the shared classifier)."""
    served = state.serving.get(scope)
    if served is not None and served[0] == key:  # another thread loaded it meanwhile
        return served[1]
    if key not in state.failed:
        try:
            row = DetectorVersion.objects.filter(version=key[0]).first()
            if row is None:
                raise Conflict(f"Classifier v{key[0]} disappeared.")
            classifier = load_version(row)
        except ApplicationError as exc:
            state.failed.add(key)
            logger.error("classifier not swapped: %s", exc.message)
        else:
            state.serving[scope] = (key, classifier)
            state.serving.move_to_end(scope)
            limit = max(1, int(settings.FIREWALL_CLASSIFIER_CACHE))
            while sum(1 for s in state.serving if s is not None) > limit:
                oldest = next(s for s in state.serving if s is not None)
                del state.serving[oldest]
            owner = f", organization {scope}" if scope else ""
            logger.info("classifier v%s loaded (%s%s)", key[0], state.status, owner)
            return classifier
    return served[1] if served is not None else None


def _current(state: _ClassifierCache, organization_id: Any = None) -> Classifier | None:
    """The classifier in `state.status` for an organization: its own if it has one (and it loads), else the
    shared one. Thread-safe; a database read at most every FIREWALL_REFRESH_S seconds, a load only on a change."""
    _refresh(state)
    scopes = (organization_id, None) if organization_id is not None else (None,)
    for scope in scopes:
        key = state.versions.get(scope)
        if key is None:
            continue
        served = state.serving.get(scope)
        if served is not None and served[0] == key:
            return served[1]
        with state.lock:
            classifier = _load(state, scope, key)
        if classifier is not None:
            return classifier
    return None


def active_classifier(organization_id: Any = None) -> Classifier | None:
    """The active classifier for an organization (its own version if it has one, else the shared one; without an
    organization, the shared one), or None when no version is active (or the active one fails to verify and none
    was loaded before). Re-checks the database at most every `FIREWALL_REFRESH_S` seconds; thread-safe."""
    return _current(_classifier_cache, organization_id)


def shadow_classifier() -> Classifier | None:
    """The classifier in shadow, or None (the common case: then the evaluation path does nothing more). Picked up
    and dropped exactly like the active one. Shadow runs are of shared versions only."""
    return _current(_shadow_cache)


# --- similarity indexes, per process --------------------------------------------------------------------------------


class CombinedIndex:
    """The global index and an organization's own, searched together (the global one is shared, not copied)."""

    def __init__(self, *indexes: SimilarityIndex) -> None:
        self.indexes = [index for index in indexes if len(index)]

    def __len__(self) -> int:
        return sum(len(index) for index in self.indexes)

    def nearest(self, text: str, k: int = 5) -> list[Match]:
        matches = [m for index in self.indexes for m in index.nearest(text, k)]
        return sorted(matches, key=lambda m: -m.score)[:k]

    def scan(self, candidates: list[Candidate]) -> list[Finding]:
        findings = [f for index in self.indexes for f in index.scan(candidates)]
        return [max(findings, key=lambda f: f.score)] if findings else []


@dataclass(frozen=True)
class _Copy:
    value: Any
    stamp: str  # the shared stamp the value was built under
    generation: int  # this process's change counter of the key when the build started
    checked_at: float


class StaleWhileRebuild:
    """Per-process copies of values built from the database, by key, that are never rebuilt inside the request that
    changed their data and never make a reader wait while an older copy exists.

    `mark_stale(key)` is cheap: a new stamp in the shared cache (other processes notice it at their next check, at
    most every FIREWALL_REFRESH_S seconds) and a counter bump here. `get(key, build)` returns the copy at once when it
    is current; when it is stale (or due for a stamp check) exactly one caller per key takes the key's lock and
    rebuilds, while every other caller keeps getting the old copy, replaced in one assignment once the new one is
    complete. Only with no copy at all do callers wait, for the single build. A change that lands during a build
    leaves the new copy stale, so it is rebuilt again rather than missed."""

    def __init__(self, stamp_key: str) -> None:
        self.stamp_key = stamp_key  # a format string with `{}` for the key
        self.builds = 0  # how many builds ran in this process (tests and logs)
        self._copies: dict[str, _Copy] = {}
        self._generations: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _stamp(self, key: str) -> str:
        stamp_key = self.stamp_key.format(key)
        stamp = cache.get(stamp_key)
        if stamp is None:  # lost (or never written): start one, so every process rebuilds once
            cache.add(stamp_key, uuid.uuid4().hex, timeout=None)
            stamp = cache.get(stamp_key) or ""
        return str(stamp)

    def _current(self, copy: _Copy | None, key: str) -> bool:
        return (
            copy is not None
            and copy.generation == self._generations.get(key, 0)
            and time.monotonic() - copy.checked_at < settings.FIREWALL_REFRESH_S
        )

    def is_stale(self, key: str) -> bool:
        """Has this process been told of a change since its copy of `key` was built (or has it none)?"""
        copy = self._copies.get(key)
        return copy is None or copy.generation != self._generations.get(key, 0)

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        copy = self._copies.get(key)
        if self._current(copy, key):
            return copy.value  # type: ignore[union-attr]
        lock = self._lock(key)
        if copy is not None:
            if not lock.acquire(blocking=False):
                return copy.value  # another caller is checking or rebuilding: serve the old copy meanwhile
        else:
            lock.acquire()  # nothing to serve yet: wait for the one build
        try:
            copy = self._copies.get(key)
            if self._current(copy, key):
                return copy.value  # type: ignore[union-attr]
            generation = self._generations.get(key, 0)
            stamp = self._stamp(key)
            if copy is not None and copy.generation == generation and copy.stamp == stamp:
                self._copies[key] = _Copy(copy.value, stamp, generation, time.monotonic())
                return copy.value
            try:
                value = build()
            except Exception:
                if copy is None:
                    raise
                logger.exception("rebuilding %s failed; the previous copy stays in use", key)
                return copy.value
            self.builds += 1
            self._copies[key] = _Copy(value, stamp, generation, time.monotonic())
            return value
        finally:
            lock.release()

    def mark_stale(self, key: str) -> None:
        """After a change: every process's copy of `key` is stale; none is rebuilt here."""
        cache.set(self.stamp_key.format(key), uuid.uuid4().hex, timeout=None)
        with self._guard:
            self._generations[key] = self._generations.get(key, 0) + 1

    def clear(self) -> None:
        with self._guard:
            self._copies.clear()
            self._generations.clear()


_STAMP_KEY = "firewall:similarity:stamp:{}"
_indexes = StaleWhileRebuild(_STAMP_KEY)


def _scope(organization: Organization | None) -> str:
    return "global" if organization is None else str(organization.pk)


def _entries(rows: Iterable[BankRow]) -> tuple[list[tuple[str, str, str]], list[str]]:
    attacks, benign = [], []
    for r in rows:
        if r.label:
            attacks.append((r.id, r.text, threat_of(r.category).value))
        else:
            benign.append(r.text)
    return attacks, benign


def _build(scope: str, organization: Organization | None) -> SimilarityIndex:
    if organization is None:
        rows, _ = bank_rows()
        attacks, benign = _entries(rows)
    else:
        own = own_prompts(organization)
        attacks, benign = _entries(
            BankRow(str(pk), text, int(label == Label.ATTACK), category)
            for pk, text, label, category in own.values_list("pk", "text", "label", "category").iterator()
        )
    index = SimilarityIndex(attacks, benign=benign)
    logger.info("similarity index %s built: %s attacks (%s benign twins left out)", scope, len(index), index.excluded)
    return index


def _scope_index(scope: str, organization: Organization | None) -> SimilarityIndex:
    return _indexes.get(scope, lambda: _build(scope, organization))


def similarity_index(organization: Organization | None = None) -> SimilarityIndex | CombinedIndex:
    """Known attacks for an evaluation: the global bank's (active release, else active prompts), plus the
    organization's own private attack prompts when it has any (never another organization's)."""
    shared = _scope_index("global", None)
    if organization is None:
        return shared
    own = _scope_index(_scope(organization), organization)
    return CombinedIndex(shared, own) if len(own) else shared


def similarity_invalidate(organization: Organization | None = None) -> None:
    """Mark a scope's index stale in every process (a new stamp in the shared cache); the next evaluation that needs
    it rebuilds it, while the others go on with the current copy."""
    _indexes.mark_stale(_scope(organization))


def similarity_is_stale(organization: Organization | None = None) -> bool:
    """Will the next `similarity_index` call of this scope rebuild (this process was told of a change)?"""
    return _indexes.is_stale(_scope(organization))


@receiver(prompts_changed, dispatch_uid="firewall.detectors.prompts_changed")
def _on_prompts_changed(sender: Any, organization: Organization | None = None, **kwargs: Any) -> None:
    similarity_invalidate(organization)


def reset_caches() -> None:
    """Forget every process-local copy (tests, and after a bulk change made outside the services)."""
    _forget_classifier()
    for state in (_classifier_cache, _shadow_cache):
        with state.lock:
            state.versions, state.failed = {}, set()
            state.serving.clear()
    _indexes.clear()
