"""PreparedInsert writes the row `save(force_insert=True)` would write, and is used only where skipping the model
signals loses nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Now
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from evalence.inserts import PreparedInsert
from firewall.models import Evaluation, ThreatPattern, ThreatPatternSighting
from firewall.services import EVALUATION_INSERT
from firewall.tests.factories import EvaluationFactory

pytestmark = pytest.mark.django_db


def _row(pk: Any) -> dict[str, Any]:
    values = Evaluation.objects.filter(pk=pk).values().get()
    values.pop("id")
    values.pop("created_at")
    return values


def test_the_row_is_the_one_save_writes(org_a: Any, alice: Any, key_a: Any) -> None:
    fields = {
        "organization": org_a,
        "text": "naïve ✓ text with 'quotes' and \\ backslashes",
        "decision": "blocked",
        "policy_decision": "blocked",
        "confidence": 0.93,
        "detectors": [{"name": "signatures", "score": 0.9, "evidence": ["ignore all"], "spans": [[0, 6]]}],
        "context": {"metadata": {"application": "chat", "nested": {"k": [1, None, True]}}},
        "sanitized_text": None,
        "shadow_score": None,
        "api_key": key_a[0],
        "actor": alice,
        "ip": "2001:db8::1",
        "session_id": "chat-42",
    }
    saved = Evaluation(**fields)
    saved.save(force_insert=True)
    prepared = Evaluation(**fields)
    EVALUATION_INSERT.insert(prepared)

    assert prepared._state.adding is False and prepared._state.db == "default"
    assert _row(prepared.pk) == _row(saved.pk)
    stored = Evaluation.objects.get(pk=prepared.pk)
    assert stored.created_at is not None and stored.created_at == prepared.created_at  # auto_now_add applied


def test_a_duplicate_key_fails_and_writes_nothing(org_a: Any) -> None:
    first = EvaluationFactory(organization=org_a)
    again = Evaluation(id=first.pk, organization=org_a, text="x", decision="allowed", policy_decision="allowed")
    with pytest.raises(IntegrityError), transaction.atomic():
        EVALUATION_INSERT.insert(again)
    assert Evaluation.objects.filter(pk=first.pk).get().text == first.text


def test_an_expression_value_goes_through_save(org_a: Any) -> None:
    evaluation = Evaluation(organization=org_a, text="x", decision="allowed", policy_decision="allowed")
    evaluation.feedback_at = Now()
    EVALUATION_INSERT.insert(evaluation)
    assert Evaluation.objects.get(pk=evaluation.pk).feedback_at is not None


@pytest.mark.parametrize("model", [Evaluation, ThreatPattern, ThreatPatternSighting])
def test_models_inserted_this_way_have_no_save_signal_receivers(model: type[models.Model]) -> None:
    """Signals are not sent: a receiver added for one of these models would silently never run."""
    assert not pre_save.has_listeners(model)
    assert not post_save.has_listeners(model)


def test_a_binary_field_gets_its_placeholder_and_the_row_is_the_one_save_writes(org_a: Any) -> None:
    fields = {
        "threat_type": "jailbreak",
        "severity": "high",
        "detection_count": 1,
        "organizations_affected": 1,
        "first_seen": timezone.now(),
        "last_seen": timezone.now(),
        "signature": b"\x00\x01binary\xff" * 8,
    }
    saved = ThreatPattern(pattern_hash="a" * 64, **fields)
    saved.save(force_insert=True)
    prepared = ThreatPattern(pattern_hash="b" * 64, **fields)
    PreparedInsert(ThreatPattern).insert(prepared)
    rows = {row.pop("pattern_hash"): row for row in ThreatPattern.objects.values()}
    for row in rows.values():
        row.pop("id")
        row["signature"] = bytes(row["signature"])
    assert rows["b" * 64] == rows["a" * 64]
