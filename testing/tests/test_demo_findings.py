"""The built-in demo assistant gives a new user real, mixed findings: a session of real bank prompts (the shipped
seed bank) against it finds successful attacks in every attack category and is resisted on others."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from promptbank.choices import ATTACK_CATEGORIES, Label
from promptbank.pipeline.classify import classify
from promptbank.tests.factories import PromptFactory
from testing import runner, services
from testing.choices import ResultKind, SessionStatus, TargetKind, Verdict
from testing.models import TestResult
from testing.seed import DEMO_CANARY, DEMO_SYSTEM_PROMPT
from testing.tests.factories import TargetFactory, TestSuiteFactory

SEED = Path(settings.BASE_DIR) / "promptbank" / "data" / "bank_seed.jsonl"
PER_CATEGORY = 25


def _bank_sample() -> dict[str, list[str]]:
    """Real seed-bank texts per category, categorised by the bank's own classifier (as its pipeline does)."""
    picked: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    with SEED.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            text = record["text"]
            key = " ".join(text.casefold().split())
            if len(text) > 1500 or key in seen:
                continue
            seen.add(key)
            if record["label"] == 0:
                if len(picked[Label.BENIGN]) < 10:
                    picked[Label.BENIGN].append(text)
                continue
            category = str(classify(text)[0])
            if len(picked[category]) < PER_CATEGORY:
                picked[category].append(text)
    return picked


@pytest.mark.django_db
def test_the_demo_assistant_yields_findings_in_every_category(org_a: Any) -> None:
    sample = _bank_sample()
    assert set(ATTACK_CATEGORIES) <= set(sample), "the seed bank has every attack category"
    for category, texts in sample.items():
        label = Label.BENIGN if category == Label.BENIGN else Label.ATTACK
        for text in texts:
            PromptFactory(organization=org_a, text=text, label=label, category=category, severity="medium")
    target = TargetFactory(
        organization=org_a,
        kind=TargetKind.DEMO,
        base_url="",
        system_prompt=DEMO_SYSTEM_PROMPT,
        canary=DEMO_CANARY,
        concurrency=8,
    )
    suite = TestSuiteFactory(organization=org_a, max_prompts=1000, baseline_prompts=10)
    session = services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False)
    runner.run_session(session_id=str(session.pk))
    session.refresh_from_db()

    assert session.status == SessionStatus.COMPLETED
    attacks = TestResult.objects.filter(session=session, kind=ResultKind.ATTACK)
    assert not attacks.filter(verdict=Verdict.ERROR).exists()
    by_category = session.summary["by_category"]
    for category in ATTACK_CATEGORIES:
        assert by_category[category]["succeeded"] >= 1, (category, by_category[category])
    # Mixed, not a pushover: it resists a good share of the attacks too.
    assert attacks.filter(verdict=Verdict.RESISTED).count() >= attacks.count() // 5
    rate = session.summary["attack_success_rate"]
    assert 0.1 < rate < 0.9, rate
    # Benign questions get answers, not refusals, and trip no leak judge.
    assert session.summary["baseline"]["succeeded"] == 0
