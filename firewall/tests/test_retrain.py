"""Retraining: the gate of "auto" activation (held-out split and benign set, accepted false-positive reports
included), the learning events, the scheduled RQ job (unique time slots, an unchanged bank skipped), the command's
--schedule and --shadow, and "train now" from the admin."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from firewall import detectors, retrain
from firewall.choices import DetectorStatus
from firewall.engine.normalize import normalize
from firewall.models import DetectorVersion
from firewall.tests.test_detectors import add_prompts, seed_slice
from promptbank.choices import LearningEventType
from promptbank.models import LearningEvent, Prompt, Submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_detectors")]

WHEN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "yesterday", "last week", "today"]


@pytest.fixture
def bank(db: Any) -> list[Prompt]:
    return add_prompts(seed_slice(40, 60))


def false_positive_report(org: Any, text: str, status: str = "accepted") -> Submission:
    """Feedback "false positive" that went through the bank's review (what `services.feedback_record` creates)."""
    return Submission.objects.create(
        organization=org,
        text=text,
        label="benign",
        category="benign",
        source="firewall",
        status=status,
        metadata={"feedback": "false_positive"},
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the gate -----------------------------------------------------------------------------------------------------


def test_the_benign_set_is_the_banks_benign_prompts_plus_accepted_false_positive_reports(
    bank: list[Prompt], org_a: Any
) -> None:
    false_positive_report(org_a, "Please  translate the notes into French.")
    false_positive_report(org_a, "Pending: not reviewed yet", status="pending")
    false_positive_report(org_a, "Rejected by the curator", status="rejected")
    Submission.objects.create(organization=org_a, text="An attack report", label="attack", source="firewall")

    texts, reports = detectors.benign_set()

    benign = {normalize(p.text).text for p in bank if p.label == "benign"}
    assert set(texts) == benign | {normalize("Please  translate the notes into French.").text}
    assert reports == 1


def test_a_retrain_that_would_raise_the_false_positive_rate_is_refused_and_a_clean_one_activates(
    bank: list[Prompt], org_a: Any
) -> None:
    for when in WHEN:
        false_positive_report(org_a, f"Please translate the meeting notes from {when} into French for the team.")
    first = detectors.detector_train()
    assert first.status == DetectorStatus.ACTIVE
    assert first.metrics["benign_set"]["false_positives"] == 0

    # Mislabelled "attacks" that read like the false-positive reports: a model trained on them blocks the reports.
    mislabelled = add_prompts(
        [
            {"text": f"Please translate the notes of meeting {n} into {language} for my team.", "label": 1}
            | {"category": "jailbreak"}
            for n in range(15)
            for language in ("French", "German")
        ]
    )
    refused = detectors.detector_train(activate="auto")

    assert refused.status == DetectorStatus.CANDIDATE
    assert refused.reason.startswith("Not activated: worse than the active v1")
    assert "benign-set false-positive rate" in refused.reason
    benign = refused.metrics["benign_set"]
    assert benign["false_positives"] > benign["active"]["false_positives"] == 0
    assert benign["false_positive_reports"] == len(WHEN)
    assert detectors.active_classifier().version == "v1"

    Prompt.objects.filter(pk__in=[p.pk for p in mislabelled]).update(is_active=False)
    clean = detectors.detector_train(activate="auto")

    assert clean.status == DetectorStatus.ACTIVE
    assert "no worse than v1" in clean.reason and "benign set" in clean.reason
    trained = LearningEvent.objects.filter(event_type=LearningEventType.DETECTOR_TRAINED).order_by("created_at")
    assert [e.result["version"] for e in trained] == [1, 2, 3]
    assert trained[1].result["metrics"]["benign_fpr"] == benign["fpr"] > 0
    activated = LearningEvent.objects.filter(event_type=LearningEventType.DETECTOR_ACTIVATED)
    assert sorted(e.result["version"] for e in activated) == [1, 3]


# --- the scheduled job --------------------------------------------------------------------------------------------


def test_the_scheduled_run_skips_an_unchanged_bank_and_reports_a_too_small_one(
    bank: list[Prompt], settings: Any
) -> None:
    first = retrain.retrain(reschedule=False)
    no_organizations = {"queued": 0} if settings.JOBS_BACKEND == "rq" else []  # none has prompts of its own
    assert first == {"version": 1, "status": "active", "reason": detectors_reason(1), "organizations": no_organizations}

    again = retrain.retrain(reschedule=False)
    assert again == {"skipped": "The bank is unchanged since v1.", "organizations": no_organizations}
    assert DetectorVersion.objects.count() == 1

    Prompt.objects.filter(label="attack").update(is_active=False)
    result = retrain.retrain(reschedule=False)
    assert "training needs at least 10" in result["error"]
    assert DetectorVersion.objects.count() == 1


def detectors_reason(number: int) -> str:
    return DetectorVersion.objects.get(version=number).reason


def test_without_redis_nothing_is_scheduled_and_the_command_says_why(db: Any, settings: Any) -> None:
    settings.JOBS_BACKEND = "thread"
    assert retrain.schedule_retrain() is None
    with pytest.raises(CommandError, match="needs Redis"):
        call_command("train_detector", "--schedule", stdout=StringIO())
    with pytest.raises(CommandError, match="does not go with --activate or --shadow"):
        call_command("train_detector", "--schedule", "--shadow", stdout=StringIO())


@pytest.mark.redis
def test_with_redis_the_job_trains_on_a_worker_and_schedules_its_next_slot_once(
    bank: list[Prompt], run_jobs: Any, settings: Any
) -> None:
    import django_rq
    from rq.registry import ScheduledJobRegistry

    settings.FIREWALL_RETRAIN_INTERVAL_S = 600
    queue = django_rq.get_queue("default")
    queue.enqueue(retrain.retrain)
    assert run_jobs() == 1
    assert DetectorVersion.objects.get().status == DetectorStatus.ACTIVE

    registry = ScheduledJobRegistry(queue=queue)
    scheduled = registry.get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(retrain.RETRAIN_JOB_PREFIX)
    when = registry.get_scheduled_time(scheduled[0])
    assert datetime.now(UTC) < when <= datetime.now(UTC) + timedelta(seconds=600)
    out = StringIO()
    call_command("train_detector", "--schedule", stdout=out)
    assert json.loads(out.getvalue())["scheduled"] == scheduled[0]  # a second chain merges into the first
    assert registry.get_job_ids() == scheduled
    assert not DetectorVersion.objects.exclude(version=1).exists()  # --schedule trains nothing itself

    settings.FIREWALL_RETRAIN_INTERVAL_S = 0
    assert retrain.schedule_retrain() is None  # switched off


# --- the command and the admin ------------------------------------------------------------------------------------


def test_the_command_trains_a_version_into_shadow(bank: list[Prompt]) -> None:
    detectors.detector_train()
    out = StringIO()

    call_command("train_detector", "--shadow", stdout=out)

    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["version"] == 2 and summary["status"] == "shadow"
    benign = DetectorVersion.objects.get(version=2).metrics["benign_set"]
    line = f"Benign set ({benign['prompts']} prompts, 0 from accepted false-positive reports): "
    assert line + f"{benign['false_positives']} blocked." in out.getvalue()
    assert dict(DetectorVersion.objects.values_list("version", "status")) == {1: "active", 2: "shadow"}
    assert detectors.shadow_classifier().version == "v2"
    with pytest.raises(CommandError, match="does not go with --activate force"):
        call_command("train_detector", "--shadow", "--activate", "force", stdout=StringIO())


def test_train_now_in_the_admin_queues_the_job_or_runs_it_here(
    bank: list[Prompt], run_jobs: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    root = UserFactory(email="root@evalence.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)

    with django_capture_on_commit_callbacks(execute=True):  # the job is enqueued once the request commits
        response = client.post(reverse("admin:firewall_detectorversion_train"), follow=True)

    if settings.JOBS_BACKEND == "rq":
        assert any(m.startswith("Training queued for a worker") for m in messages_of(response))
        assert not DetectorVersion.objects.exists()
        assert run_jobs() == 1
    else:
        assert any(m.startswith("Trained classifier v1 (active).") for m in messages_of(response))
    version = DetectorVersion.objects.get()
    assert version.status == DetectorStatus.ACTIVE and version.created_by == root
