"""Webhooks for blocked evaluations: a signed JSON POST to the URL in the tenant's policy, delivered by a job that
retries with exponential backoff.

Each request carries
    X-Evalence-Event: evaluation.blocked
    X-Evalence-Delivery: <uuid, the same on every attempt of one delivery, so a receiver can drop duplicates>
    X-Evalence-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}." + body, keyed with the webhook secret>

A receiver checks it with `verify(secret, header, body)` (or the same few lines in its own language): recompute the
HMAC over the raw body it received, compare in constant time, and refuse timestamps older than a few minutes so a
captured request cannot be replayed later. A policy without a secret gets unsigned requests.

Delivery: `webhook_enqueue()` dispatches `webhook_deliver()` on the `default` queue after the evaluation commits.
A 2xx answer is success; anything else (or a timeout or connection error) is retried after
FIREWALL_WEBHOOK_BACKOFF_S, doubling, until FIREWALL_WEBHOOK_ATTEMPTS attempts. Under RQ a retry is a new job scheduled
for later (the worker's scheduler, `rqworker --with-scheduler`, enqueues it when due), so no worker sleeps; without
Redis the in-process thread sleeps between attempts. Outcomes go to the log; there is no delivery table.

Server-side request forgery: a tenant's URL may not reach our own network (`firewall.net`). The URL is checked when
the policy is saved and again before every attempt, since DNS answers change: the host is resolved, every address must
be public, and the request is sent to one of exactly those addresses (the URL's host stays in the Host header and the
TLS SNI, so certificates are verified against it), so a rebinding name cannot slip a private address in between.
Redirects are not followed. A refused URL is a failed delivery at once, logged with the reason, never retried; a name
that does not resolve is retried like a connection error. FIREWALL_WEBHOOK_ALLOW_PRIVATE allows non-public addresses
(a receiver on your own network). Requests go straight to the receiver, never through an environment proxy.

The payload never carries the whole text: a 200-character excerpt, the length and the detectors' names and scores.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from evalence.jobs import dispatch, run_with_request_id
from evalence.logging import get_request_id
from firewall import net

if TYPE_CHECKING:
    from firewall.models import Evaluation, TenantPolicy

logger = logging.getLogger("evalence.firewall.webhooks")

EVENT_BLOCKED = "evaluation.blocked"
SIGNATURE_HEADER = "X-Evalence-Signature"
EVENT_HEADER = "X-Evalence-Event"
DELIVERY_HEADER = "X-Evalence-Delivery"
EXCERPT_CHARS = 200
ALLOWED_SCHEMES = net.ALLOWED_SCHEMES

DELIVERED = "delivered"
RETRYING = "retrying"
FAILED = "failed"
SKIPPED = "skipped"


# --- signatures ----------------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}." + body: the timestamp is signed too, so it cannot be replaced."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None) -> bool:
    """Does `header` (the X-Evalence-Signature value) sign `body` with `secret`, within `tolerance_s` of now?

    For receivers: pass the raw request body, byte for byte as received (not a re-serialized JSON). Several `v1=`
    values are accepted, so a sender may sign with an old and a new secret while they rotate.
    """
    if not secret or not header:
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


# --- payload ---------------------------------------------------------------------------------------------------------


def validate_webhook_url(url: str, *, resolve: bool = False) -> None:
    """Refuse, with a `ValueError` saying why, a URL a webhook may not call: anything but an absolute http(s) URL,
    credentials in it, and (unless FIREWALL_WEBHOOK_ALLOW_PRIVATE) a host that is a non-public address or, with
    `resolve`, resolves to one. A name that does not resolve now passes: every delivery checks it again."""
    allow_private = bool(settings.FIREWALL_WEBHOOK_ALLOW_PRIVATE)
    try:
        if resolve:
            net.resolve_url(url, allow_private=allow_private)
        else:
            net.check_url(url, allow_private=allow_private)
    except net.Unresolvable:
        pass
    except net.UnsafeURL as exc:
        raise ValueError(str(exc)) from None


def webhook_payload(evaluation: Evaluation) -> dict[str, Any]:
    """What a receiver learns about a blocked evaluation: enough to act on, not the whole text."""
    text = evaluation.text or ""
    excerpt = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
    detectors = []
    for entry in evaluation.detectors or []:
        if isinstance(entry, dict):
            detectors.append({"name": entry.get("name") or entry.get("detector", ""), "score": entry.get("score")})
    return {
        "event": EVENT_BLOCKED,
        "evaluation_id": str(evaluation.pk),
        "organization": evaluation.organization.slug,
        "direction": evaluation.direction,
        "decision": evaluation.decision,
        "policy_decision": evaluation.policy_decision,
        "threat_type": evaluation.threat_type,
        "severity": evaluation.severity,
        "confidence": evaluation.confidence,
        "detectors": detectors,
        "text_excerpt": excerpt,
        "text_length": len(text),
        "session_id": evaluation.session_id,
        "created_at": evaluation.created_at.isoformat() if evaluation.created_at else None,
    }


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def _where(url: str) -> str:
    """The URL as logs show it: scheme and host only (a path or query may carry a receiver's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


# --- delivery --------------------------------------------------------------------------------------------------------


def webhook_enqueue(evaluation: Evaluation, policy: TenantPolicy | None = None) -> bool:
    """Deliver the blocked-evaluation webhook in the background, after the current transaction commits.

    Returns False (and enqueues nothing) when the organization has no webhook or its URL is refused without DNS
    (not http(s), credentials, a non-public address literal); the job checks the resolved addresses.
    """
    from firewall.models import TenantPolicy

    if policy is None:
        policy = TenantPolicy.objects.filter(organization_id=evaluation.organization_id).first()
    url = policy.webhook_url if policy is not None else ""
    if not url:
        return False
    try:
        validate_webhook_url(url)
    except ValueError as exc:
        logger.error("webhook refused: %s", exc, extra={"organization": str(evaluation.organization_id)})
        return False
    dispatch(
        webhook_deliver,
        str(evaluation.pk),
        queue="default",
        organization_id=str(evaluation.organization_id),
        delivery_id=str(uuid.uuid4()),
    )
    return True


def webhook_deliver(
    evaluation_id: str, attempt: int = 1, *, organization_id: str | None = None, delivery_id: str | None = None
) -> str:
    """The job: POST the payload; on failure retry later (RQ) or after a sleep (in-process), up to the attempt limit.

    Loads the evaluation and the policy again on every attempt, so a URL or secret changed meanwhile is used, and a
    webhook switched off meanwhile is not sent. Resolves and checks the URL on every attempt; a refused one fails at
    once. Returns the outcome: delivered, retrying, failed or skipped.
    """
    from rq import get_current_job

    delivery_id = delivery_id or str(uuid.uuid4())
    max_attempts = max(1, settings.FIREWALL_WEBHOOK_ATTEMPTS)
    while True:
        loaded = _load(evaluation_id, organization_id)
        if loaded is None:
            logger.warning("webhook skipped: evaluation %s is gone", evaluation_id, extra={"delivery": delivery_id})
            return SKIPPED
        evaluation, policy = loaded
        url = policy.webhook_url if policy is not None else ""
        log = {"delivery": delivery_id, "evaluation": evaluation_id, "attempt": attempt}
        if not url:
            logger.info("webhook skipped: the organization has no webhook any more", extra=log)
            return SKIPPED
        log["target"] = _where(url)
        try:
            target = net.resolve_url(url, allow_private=bool(settings.FIREWALL_WEBHOOK_ALLOW_PRIVATE))
        except net.UnsafeURL as exc:
            logger.error("webhook failed, refused and not retried: %s", exc, extra=log)
            return FAILED
        except net.Unresolvable as exc:
            problem: str | None = f"DNS: {exc}"
        else:
            problem = _post(target, policy.webhook_secret, webhook_payload(evaluation), delivery_id)
        if problem is None:
            logger.info("webhook delivered", extra=log)
            return DELIVERED
        if attempt >= max_attempts:
            logger.error("webhook failed after %d attempts: %s", attempt, problem, extra=log)
            return FAILED
        delay = settings.FIREWALL_WEBHOOK_BACKOFF_S * 2 ** (attempt - 1)
        logger.warning("webhook attempt %d failed (%s); retrying in %g s", attempt, problem, delay, extra=log)
        job = get_current_job()
        if job is not None:  # under RQ: a later job, so no worker sleeps through the backoff
            _schedule_retry(job.origin, delay, evaluation_id, attempt + 1, organization_id, delivery_id)
            return RETRYING
        time.sleep(delay)
        attempt += 1


def _load(evaluation_id: str, organization_id: str | None) -> tuple[Evaluation, TenantPolicy | None] | None:
    from firewall.models import Evaluation, TenantPolicy

    evaluations = Evaluation.objects.select_related("organization")
    if organization_id is not None:
        evaluations = evaluations.filter(organization_id=organization_id)
    evaluation = evaluations.filter(pk=evaluation_id).first()
    if evaluation is None:
        return None
    return evaluation, TenantPolicy.objects.filter(organization_id=evaluation.organization_id).first()


def _post(target: net.Target, secret: str, payload: dict[str, Any], delivery_id: str) -> str | None:
    """One attempt, to the checked addresses in turn until one connects; None when the receiver answered 2xx, else
    what went wrong. The URL's host name stays in the Host header and the TLS SNI (and the certificate check)."""
    body = _body(payload)
    url = httpx.URL(target.url)
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": "Evalence-Webhook/1",
        EVENT_HEADER: payload["event"],
        DELIVERY_HEADER: delivery_id,
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature_header(secret, int(time.time()), body)
    problem = "no address to connect to"
    # trust_env=False: no environment proxy, which would resolve the name again by itself.
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=settings.FIREWALL_WEBHOOK_TIMEOUT_S) as client:
        for address in target.addresses:
            try:
                response = client.post(
                    url.copy_with(host=str(address)),
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": target.host},
                )
            except httpx.ConnectError as exc:
                problem = f"connection error: {type(exc).__name__}"
                continue  # the next address of the name, as a browser would
            except httpx.TimeoutException:
                return "timeout"
            except httpx.HTTPError as exc:
                return f"connection error: {type(exc).__name__}"
            if 200 <= response.status_code < 300:
                return None
            if response.is_redirect:
                return f"HTTP {response.status_code}: redirects are not followed"
            return f"HTTP {response.status_code}"
    return problem


def _schedule_retry(
    queue_name: str, delay_s: float, evaluation_id: str, attempt: int, organization_id: str | None, delivery_id: str
) -> None:
    import django_rq

    queue = django_rq.get_queue(queue_name)
    request_id = get_request_id()
    options: dict[str, Any] = {
        "args": (webhook_deliver, request_id, evaluation_id, attempt),
        "kwargs": {"organization_id": organization_id, "delivery_id": delivery_id},
        "meta": {"request_id": request_id},
    }
    if delay_s <= 0:
        queue.enqueue(run_with_request_id, **options)
    else:
        queue.enqueue_in(timedelta(seconds=delay_s), run_with_request_id, **options)
