"""Learned signatures: every attack an organization accepted from its own findings (a successful test attack, a
blocked input or a false-negative report that went through the bank) becomes a phrase rule of that organization's
firewall at once, beside the similarity index, so the prompt is blocked in any case, spacing or punctuation and in
its encoded forms (rules run on every decoded view) from the next evaluation on.

`learned_signatures_sync(organization)` makes the organization's `Signature` rows with `source="learned"` match its
accepted findings: one per finding prompt that is still active and long enough to be a safe rule (at least
`PHRASE_MIN_WORDS` words), rule id `LRN-` and the prompt's id; a finding whose prompt was deactivated loses its rule.
It runs when the bank says prompts changed (`promptbank.signals.prompts_changed`, sent once an acceptance commits),
and is idempotent. Never another organization's rows: the rules are the organization's own.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from accounts.models import Organization
from firewall.choices import SignatureSource
from firewall.engine.classifier import threat_of
from firewall.engine.signatures import phrase_rule
from firewall.engine.types import Severity
from firewall.models import Signature
from promptbank.choices import Label, SubmissionStatus
from promptbank.learning import LOOP_SOURCES
from promptbank.models import Submission
from promptbank.signals import prompts_changed

logger = logging.getLogger("evalence.firewall")

RULE_PREFIX = "LRN-"
WEIGHT = 0.95  # the score a learned rule gives: above every policy's default block threshold
BANK_SEVERITIES = {Severity.LOW.value, Severity.MEDIUM.value, Severity.HIGH.value, Severity.CRITICAL.value}


def rule_id_for(prompt_id: Any) -> str:
    return f"{RULE_PREFIX}{str(prompt_id).replace('-', '')[:24]}"


def _wanted(organization: Organization) -> dict[str, dict[str, Any]]:
    """The learned rules the organization should have now, by rule id (the newest findings first, at most
    FIREWALL_LEARNED_SIGNATURES_MAX)."""
    accepted = (
        Submission.objects.filter(
            organization=organization,
            status=SubmissionStatus.ACCEPTED,
            source__in=LOOP_SOURCES,
            label=Label.ATTACK,
            prompt__isnull=False,
            prompt__is_active=True,
        )
        .order_by("-reviewed_at", "-pk")
        .values_list("prompt_id", "prompt__text", "prompt__category", "prompt__severity", "source")
    )
    wanted: dict[str, dict[str, Any]] = {}
    for prompt_id, text, category, severity, source in accepted.iterator():
        rule_id = rule_id_for(prompt_id)
        if rule_id in wanted:
            continue
        rule = phrase_rule(
            rule_id,
            text,
            threat_of(category),
            Severity(severity) if severity in BANK_SEVERITIES else Severity.HIGH,
            WEIGHT,
        )
        if rule is None:
            continue
        wanted[rule_id] = {
            "pattern": rule.pattern,
            "threat_type": rule.threat_type.value,
            "severity": rule.severity.value,
            "weight": WEIGHT,
            "description": f"Learned from an accepted {source} finding (prompt {prompt_id}).",
        }
        if len(wanted) >= settings.FIREWALL_LEARNED_SIGNATURES_MAX:
            break
    return wanted


@transaction.atomic
def learned_signatures_sync(organization: Organization) -> dict[str, int]:
    """Bring the organization's learned rules in line with its accepted findings; counts of what changed."""
    wanted = _wanted(organization)
    existing = {
        row.rule_id: row
        for row in Signature.objects.select_for_update().filter(
            organization=organization, source=SignatureSource.LEARNED
        )
    }
    created = updated = deactivated = 0
    for rule_id, fields in wanted.items():
        row = existing.get(rule_id)
        if row is None:
            learned = SignatureSource.LEARNED
            Signature.objects.create(organization=organization, rule_id=rule_id, source=learned, **fields)
            created += 1
        elif not row.is_active or any(getattr(row, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(row, key, value)
            row.is_active = True
            row.save()
            updated += 1
    for rule_id, row in existing.items():
        if rule_id not in wanted and row.is_active:
            row.is_active = False
            row.save(update_fields=["is_active", "updated_at"])
            deactivated += 1
    if created or updated or deactivated:
        # Every saved row already told this process and the others to rebuild (firewall.signals).
        logger.info(
            "learned signatures of %s: %s created, %s updated, %s deactivated",
            organization.slug,
            created,
            updated,
            deactivated,
        )
    return {"created": created, "updated": updated, "deactivated": deactivated}


@receiver(prompts_changed, dispatch_uid="firewall.learned.prompts_changed")
def _on_prompts_changed(sender: Any, organization: Organization | None = None, **kwargs: Any) -> None:
    """An organization's bank changed (a finding accepted, a prompt deactivated): its learned rules follow."""
    if organization is None:
        return
    try:
        learned_signatures_sync(organization)
    except Exception:  # the bank's change stands; the rules catch up at the next change
        logger.exception("learned signatures of %s not synced", organization.slug)
