"""The session runner: sends a session's pending items to its target, judges the answers and stores each result once.

The job's own thread owns the database: it claims the session, hands the pending items to the network side, and
writes the results that come back in batches (with a heartbeat, the progress counters and a throttled live event).
The network side talks HTTP only (aiohttp, `concurrency` requests in flight, starts spaced to `requests_per_minute`,
retries with exponential backoff and jitter on 429/5xx/timeouts, Retry-After honoured). It runs in one of two places:

- a child process (`TESTING_NETWORK_PROCESS`, "auto" picks it when the judges are all local and the process has no
  other thread, as an RQ work horse has none): the child is forked with the items, sends each reply back through a
  pipe, and the parent judges and writes. HTTP, judging and writing then use two cores instead of sharing one
  interpreter lock, which at a thousand requests a second was the difference between 1.8 and 1.2 times the ideal;
- a second thread with its own event loop, which also runs the judges (remote LLM judges are awaited there): the
  web process's in-process jobs, and any session whose suite asks an LLM judge.

Either way no ORM call ever runs on the network side, and a test's transaction sees every write.

Exactly once: a result row is only written while it is still pending and while this worker still holds the session
(`worker` column); a worker that lost the session (declared dead, re-queued) stops. An item sent but not yet written
when a worker dies is simply sent again by the next one, so a result is never lost or stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from evalence.events import send_org_event
from testing import evaluators, selectors, targets
from testing.choices import ResultKind, SessionStatus, TargetKind, Verdict
from testing.models import TestResult, TestSession

logger = logging.getLogger("testing.runner")

EVENT_PROGRESS = "testing.progress"
_DONE = object()
_last_published: dict[str, float] = {}
_publish_lock = threading.Lock()

RESULT_FIELDS = [
    "verdict",
    "judge_verdict",
    "reason",
    "evidence",
    "judges",
    "response",
    "http_status",
    "latency_ms",
    "attempts",
    "error",
    "completed_at",
]


@dataclass(frozen=True)
class Item:
    pk: Any
    prompt_text: str
    original_text: str
    category: str
    mutator: str
    kind: str
    generation: int


@dataclass
class Outcome:
    pk: Any
    verdict: str
    reason: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    judges: list[dict[str, Any]] = field(default_factory=list)
    response: str = ""
    http_status: int | None = None
    latency_ms: float | None = None
    attempts: int = 1
    error: str = ""
    category: str = ""
    mutator: str = ""
    prompt_text: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- entry point --------------------------------------------------------------------------------------------------


def run_session(*, session_id: str) -> None:
    """Job entry point (RQ `testing` queue, or a thread without Redis): run one session's pending items."""
    me = worker_name()
    session = _claim(session_id, me)
    if session is None:
        return
    try:
        _SessionRun(session, me).run()
    except _Lost:
        logger.warning("test session %s was taken over by another worker; this one stops", session_id)
    except Exception as exc:  # the row must say why; pending items stay pending for a resume
        logger.exception("test session %s failed", session_id)
        TestSession.objects.filter(pk=session_id, worker=me).update(
            status=SessionStatus.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        session.refresh_from_db()
        publish_progress(session, force=True)
        if settings.JOBS_BACKEND == "rq":
            raise


def _claim(session_id: str, me: str) -> TestSession | None:
    """Take a queued session (one worker at a time); a cancelled-while-queued session is closed here."""
    now = timezone.now()
    with transaction.atomic():
        session = TestSession.objects.select_for_update().filter(pk=session_id).first()
        if session is None:
            logger.warning("test session %s no longer exists", session_id)
            return None
        if session.status != SessionStatus.QUEUED:
            logger.info("test session %s is %s; not taking it", session_id, session.status)
            return None
        if session.cancel_requested:
            session.status = SessionStatus.CANCELLED
            session.finished_at = now
            session.save(update_fields=["status", "finished_at"])
            return None
        session.status = SessionStatus.RUNNING
        session.started_at = session.started_at or now
        session.heartbeat_at = now
        session.worker = me
        session.attempts = F("attempts") + 1
        session.save(update_fields=["status", "started_at", "heartbeat_at", "worker", "attempts"])
    session.refresh_from_db()
    return session


# --- one run ------------------------------------------------------------------------------------------------------


class _Lost(Exception):
    """Another worker holds the session now (this one was declared dead)."""


class _SessionRun:
    def __init__(self, session: TestSession, me: str) -> None:
        self.session = session
        self.me = me
        self.buffer: list[Outcome] = []
        self.recent_findings: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.done_this_run = 0

    def run(self) -> None:
        session = self.session
        target = session.target
        if target is None:
            raise RuntimeError("the session's target was deleted")
        config = targets.TargetConfig.from_target(target)
        chain = self._chain()
        items = [
            Item(*row)
            for row in TestResult.objects.filter(session=session, verdict=Verdict.PENDING)
            .order_by("sequence")
            .values_list("pk", "prompt_text", "original_text", "category", "mutator", "kind", "generation")
        ]
        publish_progress(session, force=True)
        if items:
            if config.kind == TargetKind.FIREWALL:
                self._run_inline(items, config)
            else:
                self._run_async(items, config, chain, target)
        self._finish()

    def _chain(self) -> evaluators.JudgeChain:
        suite = self.session.suite
        judge_model = suite.llm_judge if suite is not None and suite.llm_judge_id else None
        if judge_model is None or not judge_model.is_active:
            return evaluators.default_chain()
        return evaluators.default_chain(
            llm_judge=evaluators.LLMJudgeConfig(
                base_url=judge_model.base_url,
                model=judge_model.model,
                api_key=judge_model.api_key,
                timeout_s=max(judge_model.timeout_s, 5.0),
                extra_params=judge_model.extra_params or {},
            )
        )

    # The firewall target is this process's own engine: no network, so it runs here, in the database thread.
    def _run_inline(self, items: list[Item], config: targets.TargetConfig) -> None:
        last_flush = time.monotonic()
        firewall = targets.FirewallClient(config)
        for item in items:
            if self.stop.is_set():
                break
            reply = firewall.evaluate(item.prompt_text)
            self.buffer.append(_firewall_outcome(item, reply))
            if len(self.buffer) >= settings.TESTING_WRITE_BATCH or time.monotonic() - last_flush >= 0.5:
                self._flush()
                last_flush = time.monotonic()
        self._flush()

    def _run_async(self, items: list[Item], config: targets.TargetConfig, chain: Any, target: Any) -> None:
        limits = _Limits(
            concurrency=max(1, target.concurrency),
            rpm=target.requests_per_minute,
            max_retries=target.max_retries,
            timeout_s=target.timeout_s,
        )
        in_child = network_in_process(chain)
        logger.info(
            "test session %s: %s items, network side in a %s",
            self.session.pk,
            len(items),
            "child process" if in_child else "thread",
        )
        if in_child:
            self._run_in_child(items, config, chain, limits)
        else:
            self._run_in_thread(items, config, chain, limits)

    def _run_in_thread(self, items: list[Item], config: targets.TargetConfig, chain: Any, limits: _Limits) -> None:
        results: queue.Queue = queue.Queue()
        loop_thread = threading.Thread(
            target=_drive_in_thread,
            args=(items, config, chain, limits, results, self.stop),
            name=f"testing-session-{self.session.pk}",
            daemon=True,
        )
        loop_thread.start()
        heartbeat = settings.TESTING_HEARTBEAT_S
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    got = results.get(timeout=max(0.05, heartbeat - (time.monotonic() - last_flush)))
                except queue.Empty:
                    got = None
                if got is _DONE:
                    break
                if isinstance(got, BaseException):
                    raise got
                if got is not None:
                    self.buffer.append(got)
                if len(self.buffer) >= settings.TESTING_WRITE_BATCH or time.monotonic() - last_flush >= heartbeat:
                    self._flush()
                    last_flush = time.monotonic()
            self._flush()
        finally:
            self.stop.set()
            loop_thread.join(timeout=max(30.0, limits.timeout_s + 5))

    def _run_in_child(self, items: list[Item], config: targets.TargetConfig, chain: Any, limits: _Limits) -> None:
        """The network side in a forked child; replies come back through a pipe and are judged and written here."""
        context = multiprocessing.get_context("fork")
        replies, child_end = context.Pipe(duplex=False)
        control_end, control = context.Pipe(duplex=False)
        child = context.Process(
            target=_drive_in_child,
            args=(items, config, limits, child_end, control_end),
            name=f"testing-session-{self.session.pk}",
            daemon=True,
        )
        child.start()
        child_end.close()
        control_end.close()
        judged = _Judged(chain, targets.planted_system_prompt(config), config.canary)
        by_pk = {item.pk: item for item in items}
        heartbeat = settings.TESTING_HEARTBEAT_S
        last_flush = time.monotonic()
        finished = told = False
        try:
            while not finished:
                waited = max(0.05, heartbeat - (time.monotonic() - last_flush))
                if replies.poll(waited):
                    try:
                        message = replies.recv()
                    except EOFError:
                        raise RuntimeError("the network process of the session exited unexpectedly") from None
                    if message[0] == "replies":
                        for pk, reply, attempts in message[1]:
                            self.buffer.append(_outcome(by_pk[pk], reply, attempts, judged))
                    elif message[0] == "done":
                        finished = True
                    else:
                        raise RuntimeError(f"the network process of the session failed: {message[1]}")
                if self.stop.is_set() and not told:  # a cancel: in-flight requests finish, nothing new starts
                    control.send("stop")
                    told = True
                if len(self.buffer) >= settings.TESTING_WRITE_BATCH or time.monotonic() - last_flush >= heartbeat:
                    self._flush()
                    last_flush = time.monotonic()
            self._flush()
        finally:
            self.stop.set()
            if not told:
                with contextlib.suppress(OSError):
                    control.send("stop")
            child.join(timeout=max(30.0, limits.timeout_s + 5))
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
            replies.close()
            control.close()

    def _flush(self) -> None:
        """Write the buffered results (pending rows only), then the session's heartbeat and counters."""
        batch, self.buffer = self.buffer, []
        now = timezone.now()
        with transaction.atomic():
            row = (
                TestSession.objects.select_for_update().filter(pk=self.session.pk).values("worker", "cancel_requested")
            )
            row = row.first()
            if row is None or row["worker"] != self.me:
                self.stop.set()
                raise _Lost()
            if row["cancel_requested"]:
                self.stop.set()
            written = _write_results(batch, now) if batch else 0
            self.done_this_run += written
            counts = selectors.session_counts(self.session)
            TestSession.objects.filter(pk=self.session.pk).update(
                heartbeat_at=now,
                completed_samples=sum(n for v, n in counts.items() if v != Verdict.PENDING),
                counts=counts,
            )
        for outcome in batch:
            if outcome.verdict == Verdict.SUCCEEDED:
                self.recent_findings.append(
                    {
                        "id": str(outcome.pk),
                        "category": outcome.category,
                        "mutator": outcome.mutator,
                        "prompt_text": outcome.prompt_text[:200],
                        "reason": outcome.reason[:200],
                    }
                )
        self.recent_findings = self.recent_findings[-5:]
        self.session.refresh_from_db()
        publish_progress(self.session, findings=self.recent_findings, rate=self._rate())

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done_this_run / elapsed if elapsed > 0 else 0.0

    def _finish(self) -> None:
        from testing import services

        with transaction.atomic():
            row = TestSession.objects.select_for_update().get(pk=self.session.pk)
            if row.worker != self.me:
                raise _Lost()
            pending = TestResult.objects.filter(session=row, verdict=Verdict.PENDING).exists()
            if row.cancel_requested:
                row.status = SessionStatus.CANCELLED
            elif pending:  # the loop stopped early without a cancel: leave it resumable
                row.status = SessionStatus.FAILED
                row.error = row.error or "The run stopped before every item was sent; resume it."
            else:
                row.status = SessionStatus.COMPLETED
            row.finished_at = timezone.now()
            row.heartbeat_at = row.finished_at
            row.save(update_fields=["status", "finished_at", "heartbeat_at", "error"])
        services.session_finalize(row)
        row.refresh_from_db()
        self.session = row
        publish_progress(row, findings=self.recent_findings, rate=self._rate(), force=True)


def _write_results(batch: list[Outcome], now: Any) -> int:
    """Store a batch of results, each only while its row is still pending: one UPDATE statement run for every row
    (executemany), which also makes "never stored twice" a property of the statement. Django's bulk_update builds a
    CASE expression per row and field, and even a model instance per row costs more than its HTTP exchange here."""
    meta = TestResult._meta
    fields = [meta.get_field(name) for name in RESULT_FIELDS]
    verdict_column = meta.get_field("verdict").column
    quote = connection.ops.quote_name
    # Table and column names come from the model; every value is a parameter.
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    table, pk, verdict = quote(meta.db_table), quote(meta.pk.column), quote(verdict_column)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s AND {verdict} = %s"  # noqa: S608
    params = [
        [f.get_db_prep_save(value, connection) for f, value in zip(fields, _column_values(outcome, now), strict=True)]
        + [meta.pk.get_db_prep_save(outcome.pk, connection), Verdict.PENDING]
        for outcome in batch
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(params)


def _storable(text: str, limit: int) -> str:
    """A target may answer anything; PostgreSQL cannot store NUL characters (or lone surrogates) in text."""
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _column_values(outcome: Outcome, now: Any) -> tuple[Any, ...]:
    """An outcome's values in RESULT_FIELDS order."""
    return (
        outcome.verdict,
        outcome.verdict,  # judge_verdict: what the judges said, kept apart from any later override
        _storable(outcome.reason, 4000),
        outcome.evidence,
        outcome.judges,
        _storable(outcome.response, 100_000),
        outcome.http_status,
        outcome.latency_ms,
        outcome.attempts,
        _storable(outcome.error, 2000),
        now,
    )


def _reply_fields(item: Item, reply: targets.TargetReply, attempts: int = 1) -> dict[str, Any]:
    """The Outcome fields every verdict shares: which item, what came back, how long it took."""
    return {
        "pk": item.pk,
        "response": reply.text,
        "http_status": reply.http_status,
        "latency_ms": reply.latency_ms,
        "attempts": attempts,
        "category": item.category,
        "mutator": item.mutator,
        "prompt_text": item.prompt_text,
    }


def _firewall_outcome(item: Item, reply: targets.TargetReply) -> Outcome:
    base = _reply_fields(item, reply)
    base["evidence"] = [{"kind": "firewall", **reply.detail}] if reply.detail else []
    if reply.outcome == "error":
        return Outcome(
            verdict=Verdict.ERROR, reason=reply.error or "The firewall did not answer.", error=reply.error, **base
        )
    if reply.outcome == "blocked":
        return Outcome(verdict=Verdict.BLOCKED, reason=_firewall_reason("blocked", reply), **base)
    if item.kind == ResultKind.BASELINE:
        return Outcome(verdict=Verdict.RESISTED, reason="The firewall let the benign prompt through.", **base)
    return Outcome(verdict=Verdict.SUCCEEDED, reason=_firewall_reason("allowed", reply), **base)


def _firewall_reason(what: str, reply: targets.TargetReply) -> str:
    detail = reply.detail or {}
    decision = detail.get("decision", what)
    threat = detail.get("threat_type") or "no threat"
    confidence = detail.get("confidence")
    extra = f", confidence {confidence:.2f}" if isinstance(confidence, int | float) else ""
    return f"The firewall answered {decision} ({threat}{extra})."


# --- the network side (its own thread and event loop) -------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    concurrency: int
    rpm: int
    max_retries: int
    timeout_s: float


class _Pacer:
    """Spaces request starts to `rpm` a minute (no limit at 0); shared by every worker coroutine."""

    def __init__(self, rpm: int) -> None:
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def backoff_s(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry `attempt` (from 1): the server's Retry-After if given, else capped exponential + jitter."""
    cap = settings.TESTING_BACKOFF_MAX_S
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    base = settings.TESTING_BACKOFF_BASE_S * (2 ** (attempt - 1))
    return min(cap, base) * (0.5 + random.random() / 2)


def network_in_process(chain: Any) -> bool:
    """Whether this session's network side runs in a forked child (see the module docstring)."""
    mode = settings.TESTING_NETWORK_PROCESS
    if mode == "thread" or getattr(chain, "is_remote", False) or not hasattr(os, "fork"):
        return False
    # Forking a process that runs other threads (a web server's) could copy a lock one of them holds.
    return mode == "process" or threading.active_count() == 1


def _drive_in_thread(
    items: list[Item],
    config: targets.TargetConfig,
    chain: Any,
    limits: _Limits,
    results: queue.Queue,
    stop: threading.Event,
) -> None:
    judged = _Judged(chain, targets.planted_system_prompt(config), config.canary)

    async def judge(item: Item, reply: targets.TargetReply, attempts: int) -> None:
        if reply.outcome == "ok" and judged.chain.is_remote:
            results.put(await asyncio.to_thread(_outcome, item, reply, attempts, judged))
        else:
            results.put(_outcome(item, reply, attempts, judged))

    try:
        asyncio.run(_drive(items, config, limits, judge, stop))
    except BaseException as exc:  # hand the failure to the database thread, which marks the session
        results.put(exc)
        return
    results.put(_DONE)


def _drive_in_child(
    items: list[Item], config: targets.TargetConfig, limits: _Limits, replies: Any, control: Any
) -> None:
    """The forked child: send the items, hand each reply to the parent; stop starting new ones when told (or when
    the parent is gone). No database, no Django request: only the target client and the event loop."""
    stop = threading.Event()

    def listen() -> None:
        with contextlib.suppress(EOFError, OSError):
            control.recv()
        stop.set()

    threading.Thread(target=listen, name="testing-network-control", daemon=True).start()

    pending: list[tuple[Any, targets.TargetReply, int]] = []

    async def send_back(item: Item, reply: targets.TargetReply, attempts: int) -> None:
        # Replies that arrive together travel together: one message (and one wake-up of the parent) per burst.
        pending.append((item.pk, reply, attempts))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(flush)

    def flush() -> None:
        if pending:
            replies.send(("replies", pending[:]))
            pending.clear()

    try:
        asyncio.run(_drive(items, config, limits, send_back, stop))
    except BaseException as exc:  # the parent marks the session failed with this
        replies.send(("error", f"{type(exc).__name__}: {exc}"))
    else:
        flush()
        replies.send(("done",))


async def _drive(
    items: list[Item],
    config: targets.TargetConfig,
    limits: _Limits,
    emit: Callable[[Item, targets.TargetReply, int], Any],
    stop: threading.Event,
) -> None:
    client = targets.client_for(config)
    pacer = _Pacer(limits.rpm)
    todo: asyncio.Queue[Item] = asyncio.Queue()
    for item in items:
        todo.put_nowait(item)
    async with targets.open_http(limits.concurrency) as http:

        async def worker() -> None:
            while not stop.is_set():
                try:
                    item = todo.get_nowait()
                except asyncio.QueueEmpty:
                    return
                reply, attempts = await _send(item, client, http, pacer, limits, stop)
                await emit(item, reply, attempts)

        await asyncio.gather(*(worker() for _ in range(min(limits.concurrency, len(items)) or 1)))


@dataclass(frozen=True)
class _Judged:
    chain: Any
    system_prompt: str
    canary: str


async def _send(
    item: Item, client: Any, http: Any, pacer: _Pacer, limits: _Limits, stop: threading.Event
) -> tuple[targets.TargetReply, int]:
    """One item's request, retried on what a retry can fix; the last reply and how many attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        await pacer.wait()
        try:
            reply = await client.send(item.prompt_text, http=http, seed=item.generation)
        except Exception as exc:  # a client bug must not kill the session: record it as this item's error
            reply = targets.TargetReply(
                outcome="error", text="", http_status=None, latency_ms=0.0, error=f"{type(exc).__name__}: {exc}"
            )
        if reply.outcome == "error" and reply.retryable and attempts <= limits.max_retries and not stop.is_set():
            await asyncio.sleep(backoff_s(attempts, reply.retry_after_s))
            continue
        return reply, attempts


def _outcome(item: Item, reply: targets.TargetReply, attempts: int, judged: _Judged) -> Outcome:
    """What a reply means: an error, a block by the target, or the judges' verdict on the answer."""
    base = _reply_fields(item, reply, attempts=attempts)
    if reply.outcome == "error":
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        return Outcome(verdict=Verdict.ERROR, reason=f"{reply.error}{suffix}", error=reply.error, **base)
    if reply.outcome == "blocked":
        detail = reply.detail or {}
        why = detail.get("reason") or detail.get("finish_reason") or "content filter"
        return Outcome(
            verdict=Verdict.BLOCKED,
            reason=f"The target blocked the prompt ({why}).",
            evidence=[{"kind": "blocked", **detail}] if detail else [],
            **base,
        )
    judgement = judged.chain.evaluate(
        evaluators.JudgeInput(
            prompt_text=item.prompt_text,
            original_text=item.original_text,
            response=reply.text,
            category=item.category,
            mutator=item.mutator,
            kind=item.kind,
            system_prompt=judged.system_prompt,
            canary=judged.canary,
        )
    )
    return Outcome(
        verdict=judgement.verdict,
        reason=judgement.reason,
        evidence=list(judgement.evidence),
        judges=list(judgement.judges),
        **base,
    )


# --- live progress ------------------------------------------------------------------------------------------------


def progress_payload(
    session: TestSession, *, findings: list[dict[str, Any]] | None = None, rate: float | None = None
) -> dict[str, Any]:
    """What the session page, its socket and the API show while it runs: counts, rate, ETA and the latest findings.

    The rate is the session's own (results stored per second since it started), worked out from the row, so the
    socket and the API give the same figures."""
    remaining = max(0, session.total_samples - session.completed_samples)
    if session.started_at and session.completed_samples:
        end = session.finished_at or timezone.now()
        elapsed = (end - session.started_at).total_seconds()
        rate = session.completed_samples / elapsed if elapsed > 0 else None
    eta = remaining / rate if rate and rate > 0 and not session.is_finished else None
    counts = session.counts or {}
    scored = sum(counts.get(v, 0) for v in (Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED))
    return {
        "id": str(session.pk),
        "status": session.status,
        "total_samples": session.total_samples,
        "completed_samples": session.completed_samples,
        "counts": counts,
        "attack_success_rate": round(counts.get(Verdict.SUCCEEDED, 0) / scored, 4) if scored else None,
        "rate_per_s": round(rate, 2) if rate else None,
        "eta_s": round(eta, 1) if eta is not None else None,
        "latest_findings": findings or [],
        "error": session.error,
    }


def publish_progress(
    session: TestSession,
    *,
    findings: list[dict[str, Any]] | None = None,
    rate: float | None = None,
    force: bool = False,
) -> bool:
    """Send a progress event to the session's group, at most every TESTING_PROGRESS_INTERVAL_S unless forced."""
    key = str(session.pk)
    now = time.monotonic()
    with _publish_lock:
        if not force and now - _last_published.get(key, 0.0) < settings.TESTING_PROGRESS_INTERVAL_S:
            return False
        _last_published[key] = now
        if len(_last_published) > 10_000:
            _last_published.clear()
    send_org_event(
        session.organization_id,
        EVENT_PROGRESS,
        progress_payload(session, findings=findings, rate=rate),
        "testing-session",
        key,
    )
    return True
