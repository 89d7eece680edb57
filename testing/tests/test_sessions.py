"""Sessions end to end: planning, the runner against a real loopback endpoint, retries, errors, cancel, resume after a
dead worker (also with a real RQ worker process killed mid-session), overrides, findings and the CI command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.models import AuditLog
from promptbank.choices import Category
from promptbank.models import PromptStats, Submission
from promptbank.tests.factories import PromptFactory
from testing import evaluators, runner, services
from testing.choices import SessionStatus, TargetKind, Verdict
from testing.models import TestResult, TestSession
from testing.tests.factories import TargetFactory, TestSuiteFactory

REFUSAL = "I'm sorry, but I can't help with that."


def _target(org: Any, server: Any, **extra: Any) -> Any:
    options = {"kind": TargetKind.OPENAI_CHAT, "base_url": server.base_url, "concurrency": 4, "timeout_s": 5.0}
    options.update(extra)
    return TargetFactory(organization=org, **options)


def _run(session: TestSession) -> TestSession:
    runner.run_session(session_id=str(session.pk))
    session.refresh_from_db()
    return session


# --- planning -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_is_prompts_times_variants_times_generations_plus_baseline(org_a: Any, bank: Any) -> None:
    suite = TestSuiteFactory(
        organization=org_a, mutators=["base64", "rot13"], generations=2, max_prompts=100, baseline_prompts=2
    )
    items = services.plan_items(suite, org_a)
    attacks = [i for i in items if i.kind == "attack"]
    assert len(attacks) == 7 * 3 * 2
    assert len([i for i in items if i.kind == "baseline"]) == 2
    assert len({i.item_key for i in items}) == len(items)
    encoded = next(i for i in attacks if i.mutator == "base64")
    assert encoded.prompt_text != encoded.original_text
    assert services.plan_items(suite, org_a) == items  # deterministic


@pytest.mark.django_db
def test_plan_respects_filters_and_the_seeded_sample(org_a: Any, bank: Any) -> None:
    suite = TestSuiteFactory(organization=org_a, categories=[Category.SYSTEM_PROMPT_LEAK], max_prompts=2)
    items = services.plan_items(suite, org_a)
    assert len(items) == 2 and {i.category for i in items} == {Category.SYSTEM_PROMPT_LEAK}
    other_seed = TestSuiteFactory(
        organization=org_a, categories=[Category.PROMPT_INJECTION], max_prompts=2, random_seed=99
    )
    assert {i.category for i in services.plan_items(other_seed, org_a)} == {Category.PROMPT_INJECTION}


@pytest.mark.django_db
def test_another_organizations_prompts_are_never_planned(org_a: Any, org_b: Any, bank: Any) -> None:
    PromptFactory(organization=org_b, text="Organization B's private attack prompt.")
    suite = TestSuiteFactory(organization=org_a, max_prompts=1000)
    texts = {i.original_text for i in services.plan_items(suite, org_a)}
    assert "Organization B's private attack prompt." not in texts


@pytest.mark.django_db
def test_session_create_refuses_foreign_rows_and_empty_selections(org_a: Any, org_b: Any, bank: Any) -> None:
    foreign_target = TargetFactory(organization=org_b)
    suite = TestSuiteFactory(organization=org_a)
    with pytest.raises(ValidationError, match="must belong"):
        services.session_create(organization=org_a, actor=None, target=foreign_target, suite=suite)
    empty = TestSuiteFactory(organization=org_a, categories=[Category.HARMFUL_REQUEST])
    with pytest.raises(ValidationError, match="no attack prompts"):
        services.session_create(organization=org_a, actor=None, target=TargetFactory(organization=org_a), suite=empty)
    assert not TestSession.objects.exists()


@pytest.mark.django_db
def test_suite_validation_names_the_bad_values(org_a: Any) -> None:
    with pytest.raises(ValidationError, match="Unknown mutators"):
        services.suite_create(organization=org_a, actor=None, name="x", mutators=["base65"])
    with pytest.raises(ValidationError, match="Unknown categories"):
        services.suite_create(organization=org_a, actor=None, name="x", categories=["benign"])
    with pytest.raises(ValidationError, match="at least one mutator"):
        services.suite_create(organization=org_a, actor=None, name="x", include_original=False)


# --- running ------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["thread", "process"])
def network(request: Any, settings: Any) -> str:
    """Run the test with the session's network side in a thread, then in a forked child process."""
    settings.TESTING_NETWORK_PROCESS = request.param
    return request.param


@pytest.mark.django_db
def test_a_session_runs_every_item_once_and_summarises(
    org_a: Any, alice: Any, bank: Any, llm_server: Any, network: str, caplog: Any
) -> None:
    caplog.set_level("INFO", logger="testing.runner")

    def answer(request: Any) -> str:
        user = request.messages[-1]["content"]
        if "PWNED 0" in user or "PWNED 1" in user:
            return "PWNED 0" if "PWNED 0" in user else "PWNED 1"
        return REFUSAL

    llm_server.handler = answer
    target = _target(org_a, llm_server, canary="CANARY-123456")
    suite = TestSuiteFactory(organization=org_a, categories=[Category.PROMPT_INJECTION], baseline_prompts=2)
    session = services.session_create(organization=org_a, actor=alice, target=target, suite=suite, start=False)
    assert session.total_samples == 6 and session.status == SessionStatus.QUEUED
    session = _run(session)

    assert session.status == SessionStatus.COMPLETED
    assert session.completed_samples == 6 and session.attempts == 1
    assert f"network side in a {'child process' if network == 'process' else 'thread'}" in caplog.text
    results = TestResult.objects.filter(session=session)
    assert results.count() == 6 and not results.filter(verdict=Verdict.PENDING).exists()
    assert results.filter(kind="attack", verdict=Verdict.SUCCEEDED).count() == 2
    assert results.filter(kind="attack", verdict=Verdict.RESISTED).count() == 2
    summary = session.summary
    assert summary["attack_success_rate"] == pytest.approx(0.5)
    assert summary["by_category"][Category.PROMPT_INJECTION]["succeeded"] == 2
    # Each request carried the planted system prompt (with the canary) and the prompt actually planned.
    sent = [r.messages for r in llm_server.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 6
    assert all("CANARY-123456" in m[0]["content"] for m in sent)
    assert {m[-1]["content"] for m in sent} == set(results.values_list("prompt_text", flat=True))
    # The bank learns: per-prompt statistics and the findings offered as submissions.
    stats = PromptStats.objects.filter(organization=org_a, prompt__in=bank["injections"])
    assert sum(s.test_runs for s in stats) == 4 and sum(s.attack_successes for s in stats) == 2
    findings = Submission.objects.filter(organization=org_a, source="testing")
    assert findings.count() == 2
    assert set(results.filter(verdict=Verdict.SUCCEEDED).values_list("submission_id", flat=True)) == set(
        findings.values_list("pk", flat=True)
    )


@pytest.mark.django_db
def test_rate_limits_are_retried_and_errors_are_never_counted_as_resisted(
    org_a: Any, bank: Any, llm_server: Any, settings: Any, network: str
) -> None:
    settings.TESTING_BACKOFF_BASE_S = 0.01
    seen: dict[str, int] = {}

    def answer(request: Any) -> Any:
        user = request.messages[-1]["content"]
        seen[user] = seen.get(user, 0) + 1
        if "PWNED 0" in user:  # always failing: an error after the retries
            return 500, {"error": {"message": "boom"}}
        if seen[user] == 1:  # every other prompt: rate limited once, then answered
            return 429, {"error": {"message": "slow down"}}
        return REFUSAL

    llm_server.handler = answer
    target = _target(org_a, llm_server, max_retries=2)
    suite = TestSuiteFactory(organization=org_a, categories=[Category.PROMPT_INJECTION], baseline_prompts=0)
    session = _run(services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False))

    assert session.status == SessionStatus.COMPLETED
    failed = TestResult.objects.get(session=session, prompt_text__contains="PWNED 0")
    assert failed.verdict == Verdict.ERROR and failed.attempts == 3 and failed.http_status == 500
    assert "3 attempts" in failed.reason
    others = TestResult.objects.filter(session=session).exclude(pk=failed.pk)
    assert {r.verdict for r in others} == {Verdict.RESISTED}
    assert {r.attempts for r in others} == {2}
    assert session.summary["errors"] == 1 and session.summary["scored"] == 3
    assert session.summary["attack_success_rate"] == 0.0


@pytest.mark.django_db
def test_an_unreachable_target_gives_errors_not_a_clean_bill(org_a: Any, bank: Any, settings: Any) -> None:
    settings.TESTING_BACKOFF_BASE_S = 0.01
    target = TargetFactory(organization=org_a, base_url="http://127.0.0.1:9/v1", max_retries=1, timeout_s=1.0)
    suite = TestSuiteFactory(organization=org_a, categories=[Category.SYSTEM_PROMPT_LEAK], baseline_prompts=0)
    session = _run(services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False))
    assert session.status == SessionStatus.COMPLETED
    assert session.counts == {Verdict.ERROR: 3}
    assert session.summary["attack_success_rate"] is None


@pytest.mark.django_db
def test_progress_events_are_throttled_and_the_last_one_is_final(
    org_a: Any, bank: Any, llm_server: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.TESTING_PROGRESS_INTERVAL_S = 60.0
    settings.TESTING_WRITE_BATCH = 1
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "send_org_event", lambda org_id, kind, payload, *parts: sent.append(payload))
    llm_server.handler = lambda request: REFUSAL
    target = _target(org_a, llm_server, concurrency=1)
    suite = TestSuiteFactory(organization=org_a, baseline_prompts=0)
    session = _run(services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False))
    assert session.total_samples == 7
    # 7 writes, but within the interval only the forced first and last events go out.
    assert len(sent) == 2
    assert sent[-1]["status"] == SessionStatus.COMPLETED and sent[-1]["completed_samples"] == 7


@pytest.mark.django_db
def test_cancel_before_start_and_a_cancel_noticed_mid_run(
    org_a: Any, bank: Any, llm_server: Any, settings: Any, monkeypatch: Any, network: str
) -> None:
    llm_server.handler = lambda request: REFUSAL
    target = _target(org_a, llm_server, concurrency=1)
    suite = TestSuiteFactory(organization=org_a, baseline_prompts=0)
    queued = services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False)
    queued = services.session_cancel(session=queued, actor=None)
    assert queued.status == SessionStatus.CANCELLED
    runner.run_session(session_id=str(queued.pk))  # a late delivery does nothing
    assert not TestResult.objects.filter(session=queued).exclude(verdict=Verdict.PENDING).exists()

    settings.TESTING_WRITE_BATCH = 1
    original_flush = runner._SessionRun._flush

    def flush_then_cancel(self: Any) -> None:  # an analyst presses Cancel after the second stored result
        original_flush(self)
        if self.done_this_run >= 2:
            TestSession.objects.filter(pk=self.session.pk).update(cancel_requested=True)

    monkeypatch.setattr(runner._SessionRun, "_flush", flush_then_cancel)
    llm_server.behaviour, llm_server.slow_s = "slow", 0.1  # answers slower than the runner notices the cancel
    running = services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False)
    running = _run(running)
    assert running.status == SessionStatus.CANCELLED
    done = TestResult.objects.filter(session=running).exclude(verdict=Verdict.PENDING).count()
    assert 2 <= done < running.total_samples

    # Resuming a cancelled session runs only what is left.
    monkeypatch.setattr(runner._SessionRun, "_flush", original_flush)
    llm_server.behaviour = "ok"
    before = len(llm_server.requests)
    services.session_resume(session=running, actor=None)
    running = _run(running)
    assert running.status == SessionStatus.COMPLETED
    assert len(llm_server.requests) - before == running.total_samples - done
    assert TestResult.objects.filter(session=running, verdict=Verdict.RESISTED).count() == running.total_samples
    # The bank's statistics count each item once: nothing when it was cancelled, everything when the resume completed.
    stats = PromptStats.objects.filter(organization=org_a)
    assert sum(row.test_runs for row in stats) == running.total_samples


@pytest.mark.django_db
def test_a_stale_session_is_requeued_and_finishes_without_duplicates(
    org_a: Any, bank: Any, llm_server: Any, settings: Any
) -> None:
    llm_server.handler = lambda request: REFUSAL
    target = _target(org_a, llm_server)
    suite = TestSuiteFactory(organization=org_a, baseline_prompts=0)
    session = services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False)
    # A worker took it, stored two results and died.
    first_two = list(TestResult.objects.filter(session=session).order_by("sequence")[:2])
    for result in first_two:
        TestResult.objects.filter(pk=result.pk).update(
            verdict=Verdict.SUCCEEDED, response="kept from the first worker", completed_at=timezone.now()
        )
    old = timezone.now() - timedelta(seconds=settings.TESTING_STALE_AFTER_S + 5)
    TestSession.objects.filter(pk=session.pk).update(
        status=SessionStatus.RUNNING, worker="dead-worker", heartbeat_at=old, started_at=old, attempts=1
    )
    session.refresh_from_db()
    runner.run_session(session_id=str(session.pk))  # a duplicate delivery: the session is not queued, nothing runs
    assert llm_server.requests == []
    recovered = services.sessions_recover_stale()
    assert [s.pk for s in recovered] == [session.pk]
    session = _run(session)
    assert session.status == SessionStatus.COMPLETED and session.attempts == 2
    assert len(llm_server.requests) == session.total_samples - 2
    assert TestResult.objects.filter(session=session, response="kept from the first worker").count() == 2
    assert TestResult.objects.filter(session=session).count() == session.total_samples


@pytest.mark.django_db
def test_a_live_session_is_not_resumed_and_a_completed_one_not_restarted(org_a: Any, bank: Any) -> None:
    target = TargetFactory(organization=org_a)
    suite = TestSuiteFactory(organization=org_a, baseline_prompts=0)
    session = services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False)
    TestSession.objects.filter(pk=session.pk).update(status=SessionStatus.RUNNING, heartbeat_at=timezone.now())
    session.refresh_from_db()
    with pytest.raises(ValidationError, match="worker is alive"):
        services.session_resume(session=session, actor=None)
    assert services.sessions_recover_stale() == []
    TestSession.objects.filter(pk=session.pk).update(status=SessionStatus.COMPLETED)
    session.refresh_from_db()
    with pytest.raises(ValidationError, match="complete"):
        services.session_resume(session=session, actor=None)


@pytest.mark.django_db
def test_override_keeps_the_judges_verdict_audits_and_redoes_the_summary(
    org_a: Any, alice: Any, bank: Any, llm_server: Any
) -> None:
    llm_server.handler = lambda request: REFUSAL
    target = _target(org_a, llm_server)
    suite = TestSuiteFactory(organization=org_a, categories=[Category.PROMPT_INJECTION], baseline_prompts=0)
    session = _run(services.session_create(organization=org_a, actor=None, target=target, suite=suite, start=False))
    assert session.summary["succeeded"] == 0
    result = TestResult.objects.filter(session=session).first()
    with pytest.raises(ValidationError, match="why"):
        services.result_override(result=result, actor=alice, verdict=Verdict.SUCCEEDED, reason=" ")
    services.result_override(result=result, actor=alice, verdict=Verdict.SUCCEEDED, reason="It did leak, subtly.")
    result.refresh_from_db()
    session.refresh_from_db()
    assert result.verdict == Verdict.SUCCEEDED and result.judge_verdict == Verdict.RESISTED
    assert result.overridden_by == alice and result.is_overridden
    assert session.summary["succeeded"] == 1 and session.summary["overridden"] == 1
    entry = AuditLog.objects.get(organization=org_a, action=AuditAction.VERDICT_OVERRIDDEN)
    assert entry.data["from"] == Verdict.RESISTED and entry.data["to"] == Verdict.SUCCEEDED


@pytest.mark.django_db
def test_target_secrets_are_encrypted_kept_on_blank_update_and_audited(org_a: Any, alice: Any) -> None:
    target = services.target_create(
        organization=org_a,
        actor=alice,
        name="prod bot",
        kind=TargetKind.OPENAI_CHAT,
        base_url="https://llm.example.com/v1",
        model="m",
        api_key="sk-live-abcdef1234567890",
        headers={"X-Team": "red"},
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, headers FROM testing_target WHERE id = %s", [target.pk.hex])
        row = cursor.fetchone() or ()
    if not row:
        with connection.cursor() as cursor:
            cursor.execute("SELECT api_key, headers FROM testing_target WHERE id = %s", [str(target.pk)])
            row = cursor.fetchone()
    assert "sk-live" not in row[0] and "X-Team" not in row[1]
    services.target_update(target=target, actor=alice, api_key="", model="m2")
    target.refresh_from_db()
    assert target.api_key == "sk-live-abcdef1234567890" and target.model == "m2"
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.TARGET_CHANGED).count() == 2
    with pytest.raises(ValidationError, match="http"):
        services.target_update(target=target, actor=alice, base_url="ftp://x")
    with pytest.raises(ValidationError, match="Headers"):
        services.target_update(target=target, actor=alice, headers="[1, 2]")


# --- the CI command -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_suite_waits_writes_the_report_and_gates_on_the_rate(
    org_a: Any, bank: Any, llm_server: Any, tmp_path: Any, capsys: Any
) -> None:
    llm_server.handler = lambda request: "PWNED 0" if "PWNED 0" in request.messages[-1]["content"] else REFUSAL
    _target(org_a, llm_server, name="bot")
    TestSuiteFactory(organization=org_a, name="inj", categories=[Category.PROMPT_INJECTION], baseline_prompts=0)
    report = tmp_path / "report.xml"
    options = {"org": org_a.slug, "target": "bot", "suite": "inj", "wait": True}
    call_command("run_suite", **options, report=str(report), format="junit")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["attack_success_rate"] == pytest.approx(0.25)
    assert summary["passed"] is True and report.read_text().startswith("<?xml")

    with pytest.raises(CommandError) as over:
        call_command("run_suite", **options, fail_over=0.1)
    assert over.value.returncode == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["passed"] is False

    call_command("run_suite", **options, fail_over=0.3)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["passed"] is True


@pytest.mark.django_db
def test_run_suite_bad_arguments_exit_2_with_one_line(org_a: Any) -> None:
    for options, message in (
        ({"org": "nope", "target": "t", "suite": "s"}, "nope"),
        ({"org": org_a.slug, "target": "missing", "suite": "s"}, "no target"),
    ):
        with pytest.raises(CommandError, match=message) as error:
            call_command("run_suite", **options)
        assert error.value.returncode == 2
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("run_suite", "--org", org_a.slug, "--target", "t", "--suite", "s", "--fail-over", "5")


# --- a real RQ worker killed mid-session --------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_session_then_another_finishes_with_one_result_each(
    org_a: Any, bank: Any, llm_server_factory: Any, settings: Any, run_jobs: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the worker subprocess needs a database server it can share with the test")
    server = llm_server_factory()
    server.behaviour = "slow"
    server.slow_s = 0.3
    server.handler = lambda request: REFUSAL
    target = _target(org_a, server, concurrency=1)
    suite = TestSuiteFactory(organization=org_a, baseline_prompts=0, mutators=["base64"], generations=2)
    session = services.session_create(organization=org_a, actor=None, target=target, suite=suite)  # queued on RQ
    planned = session.total_samples
    assert planned == 7 * 2 * 2

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "evalence.settings_test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
        "TESTING_WRITE_BATCH": "1",
        "TESTING_HEARTBEAT_S": "0.2",
    }
    env.pop("DATABASE_TEST_NAME", None)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "testing", "--burst", "--worker-class", "rq.SimpleWorker"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = TestResult.objects.filter(session=session).exclude(verdict=Verdict.PENDING).count()
            if done >= 3:
                break
            time.sleep(0.1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    session.refresh_from_db()
    done_by_first = TestResult.objects.filter(session=session).exclude(verdict=Verdict.PENDING).count()
    assert session.status == SessionStatus.RUNNING and 3 <= done_by_first < planned

    settings.TESTING_STALE_AFTER_S = 0.5
    time.sleep(1.0)
    server.behaviour = "ok"
    assert [s.pk for s in services.sessions_recover_stale()] == [session.pk]
    run_jobs()
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED and session.attempts == 2
    results = TestResult.objects.filter(session=session)
    assert results.count() == planned
    assert not results.filter(verdict=Verdict.PENDING).exists()
    assert results.values("item_key").distinct().count() == planned
    assert session.completed_samples == planned


def test_the_network_side_is_forked_only_where_that_is_safe(settings: Any) -> None:
    local, remote = evaluators.default_chain(), type("Remote", (), {"is_remote": True})()
    settings.TESTING_NETWORK_PROCESS = "thread"
    assert runner.network_in_process(local) is False
    settings.TESTING_NETWORK_PROCESS = "process"
    assert runner.network_in_process(local) is True
    assert runner.network_in_process(remote) is False  # an LLM judge is awaited on the network side
    settings.TESTING_NETWORK_PROCESS = "auto"
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:  # a process with another thread (a web server's) is never forked
        assert runner.network_in_process(local) is False
    finally:
        release.set()
        other.join()
    assert runner.network_in_process(local) is (threading.active_count() == 1)
