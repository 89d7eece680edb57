"""What each process keeps loaded for the hot path, and how it notices changes made by other processes.

- The policy of an organization is read through Django's cache (Redis when configured, so a change — the emergency
  stop above all — reaches every web process on its next request); the services delete the entry after a change.
- Signature rules are compiled once per process per organization (the global rows plus the organization's own) and
  recompiled when a version stamp in the cache moves, checked at most every FIREWALL_REFRESH_S seconds.
- The classifier and the similarity index come from `firewall.detectors`, hot-swapped the same way.
- Remote judges are assembled from the organization's active `DetectorModel` rows, each behind its process-wide
  circuit breaker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q

from firewall.choices import SignatureSource
from firewall.engine.pipeline import ALL_DETECTORS, Engine
from firewall.engine.policy import PolicyConfig
from firewall.engine.signatures import SignatureRule, SignatureSet, with_builtin_hints, words_of_pattern
from firewall.engine.types import Severity, ThreatType
from firewall.versioned import VersionedCache

if TYPE_CHECKING:
    from accounts.models import Organization
    from firewall.models import TenantPolicy

POLICY_KEY = "fw:policy:{}"
SIGNATURE_STAMP_KEY = "fw:signatures:stamp"
JUDGES_STAMP_KEY = "fw:judges:stamp"
POLICY_TTL_S = 300


def policy_config_from(policy: TenantPolicy) -> PolicyConfig:
    detectors = frozenset(name for name, on in (policy.detectors or {}).items() if on and name in ALL_DETECTORS)
    return PolicyConfig(
        block_threshold=policy.block_threshold,
        flag_threshold=policy.flag_threshold,
        actions=dict(policy.actions or {}),
        detectors=detectors,
        max_input_chars=policy.max_input_chars,
        rate_limit_per_minute=policy.rate_limit_per_minute,
        fail_closed=policy.fail_mode == "closed",
        monitor_mode=policy.monitor_mode,
        emergency_stop=policy.emergency_stop,
        context_turns=policy.context_turns,
        webhook=bool(policy.webhook_url),
        version=policy.version,
    )


def policy_config(organization: Organization) -> PolicyConfig:
    """The organization's policy as the engine sees it (created with defaults on first use)."""
    key = POLICY_KEY.format(organization.pk)
    config = cache.get(key)
    if config is None:
        from firewall.selectors import policy_for

        config = policy_config_from(policy_for(organization))
        # Without Redis the cache is this process's own: a change made by another process (a command, a shell) is
        # seen after FIREWALL_REFRESH_S instead of waiting for the long TTL.
        cache.set(key, config, POLICY_TTL_S if settings.REDIS_URL else settings.FIREWALL_REFRESH_S)
    return config


def forget_policy(organization_id: Any) -> None:
    cache.delete(POLICY_KEY.format(organization_id))


# --- signatures ---------------------------------------------------------------------------------------------------


_signature_sets = VersionedCache(SIGNATURE_STAMP_KEY)


def rule_from_row(row: Any) -> SignatureRule:
    """A `Signature` row as the engine runs it: a learned phrase rule through the phrase index, a built-in rule with
    its hints, anything else as its regex."""
    words = words_of_pattern(row.pattern) if row.source == SignatureSource.LEARNED else ()
    rule = SignatureRule(
        row.rule_id,
        row.pattern,
        ThreatType(row.threat_type),
        Severity(row.severity),
        row.weight,
        row.description,
        words=words,
    )
    return with_builtin_hints(rule) if row.organization_id is None else rule


def _build_signatures(organization_id: Any) -> SignatureSet:
    from firewall.models import Signature

    rows = Signature.objects.filter(is_active=True).filter(
        Q(organization__isnull=True) | Q(organization_id=organization_id)
    )
    rules: dict[str, SignatureRule] = {}
    # The organization's rule wins over a global rule with the same id.
    for row in sorted(rows, key=lambda r: r.organization_id is not None):
        try:
            rules[row.rule_id] = rule_from_row(row)
        except ValueError:
            continue
    try:
        return SignatureSet(rules.values())
    except ValueError:
        # A broken row (validated on save, so only by a direct database edit) must not take the firewall down.
        good = []
        for rule in rules.values():
            try:
                SignatureSet([rule])
                good.append(rule)
            except ValueError:
                continue
        return SignatureSet(good)


def signature_set(organization_id: Any) -> SignatureSet:
    return _signature_sets.get(organization_id, lambda: _build_signatures(organization_id))


def signatures_changed() -> None:
    _signature_sets.bump()


# --- remote judges ------------------------------------------------------------------------------------------------

_judges = VersionedCache(JUDGES_STAMP_KEY)


def _build_judges(organization_id: Any) -> Any:
    from firewall.engine.breaker import breaker_for
    from firewall.engine.remote import JudgeChain, judge_for
    from firewall.models import DetectorModel

    chain = []
    for row in DetectorModel.objects.filter(organization_id=organization_id, is_active=True).order_by(
        "priority", "name"
    ):
        judge = judge_for(
            str(row.pk),
            name=row.name,
            base_url=row.base_url,
            model=row.model,
            api_key=row.api_key,
            timeout_s=row.timeout_s,
            extra_params=row.extra_params or {},
        )
        breaker = breaker_for(
            str(row.pk),
            failure_threshold=row.failure_threshold,
            recovery_timeout_s=row.recovery_timeout_s,
            name=f"model:{row.name}",
        )
        chain.append((judge, breaker))
    return JudgeChain(chain) if chain else None


def judges(organization_id: Any) -> Any:
    return _judges.get(organization_id, lambda: _build_judges(organization_id))


def judges_changed() -> None:
    _judges.bump()


# --- the engine ---------------------------------------------------------------------------------------------------


def engine_for(organization: Organization, config: PolicyConfig | None = None) -> Engine:
    """The engine for one organization: its signatures, the active classifier, the similarity index (the global bank
    plus its own attacks), and its remote judges when its policy turns them on."""
    from firewall import detectors

    config = config or policy_config(organization)
    return Engine(
        signatures=signature_set(organization.pk),
        classifier=detectors.active_classifier(organization.pk) if "classifier" in config.detectors else None,
        similarity=detectors.similarity_index(organization) if "similarity" in config.detectors else None,
        judges=judges(organization.pk) if "models" in config.detectors else None,
    )


def reset() -> None:
    """Drop everything this process loaded (tests start from a clean slate)."""
    _signature_sets.clear()
    _judges.clear()
