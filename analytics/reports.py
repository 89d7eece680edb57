"""The organization report: one period's firewall and red-team figures, as a printable HTML page and as CSV, and its
delivery by e-mail on the schedule an admin sets (`ReportSchedule`).

The figures come from the overview's selectors (`analytics.selectors`) wherever one fits, so the report and the
dashboard never disagree; the few reads they lack (days by decision, sessions finished in the period, the latest
session per target as of the period's end) are grouped queries here, a fixed number whatever the number of rows.

The report is the organization's own, so it shows its own top blocked texts — escaped by the template engine,
truncated, and defused against spreadsheet formulas in the CSV (`testing.reports._defuse`). The HTML is
self-contained (inline CSS, no script, no external asset): it is mailed, archived and printed to PDF by a browser.

Delivery (`send_due_reports`) sends each enabled schedule's latest finished period once: the schedule row is locked
while it is sent and records the period's end on success, so two workers or two runs never send it twice; a failure
is kept in `last_error` and retried at the next run.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.db.models.functions import Substr, TruncDate
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts.choices import AuditAction
from accounts.services import audit_log_write
from analytics import selectors
from analytics.figures import CATEGORY_LABELS, THREAT_LABELS
from analytics.models import ReportFrequency, ReportSchedule
from analytics.selectors import Period
from evalence.errors import ValidationFailed
from firewall.choices import Decision
from testing.choices import SCORED_VERDICTS, ResultKind, SessionStatus, Verdict
from testing.models import TestResult, TestSession
from testing.reports import _config_value, _defuse, _pct

if TYPE_CHECKING:
    from accounts.models import Organization, User

logger = logging.getLogger("analytics.reports")

DEFAULT_SPAN = timedelta(days=7)
# Reports read raw rows (the rollups are not behind these selectors yet), so a custom range is bounded like the
# overview's; a calendar month is the longest preset.
MAX_SPAN = timedelta(days=92)
MIN_SPAN = timedelta(hours=1)
MAX_RECIPIENTS = 20
TOP_BLOCKED = 10
TOP_BLOCKED_CHARS = 160
MAX_SESSIONS = 100
MAX_TARGETS = selectors.MAX_TARGETS
CSV_COLUMNS = ("section", "metric", "dimension", "value")
DECISION_ORDER = (Decision.ALLOWED, Decision.SANITIZED, Decision.THROTTLED, Decision.BLOCKED)
PRESETS = ("7d", "weekly", "monthly")
_RECIPIENT_SPLIT = re.compile(r"[\s,;]+")


class ReportInputError(ValidationFailed):
    """A period, preset or recipient list a caller must fix (a form error on the page, one line in a command)."""


# --- periods ------------------------------------------------------------------------------------------------------


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def scheduled_period(frequency: str, now: datetime | None = None) -> Period:
    """The latest period of this frequency that has ended by `now`: the 7 days before the last Monday 00:00 (weekly)
    or the previous calendar month (monthly), in the local time zone (TIME_ZONE), so bounds are local midnights."""
    today = timezone.localtime(now or timezone.now()).date()
    if frequency == ReportFrequency.WEEKLY:
        monday = today - timedelta(days=today.weekday())
        return Period(_local_midnight(monday - timedelta(days=7)), _local_midnight(monday), preset="weekly")
    if frequency == ReportFrequency.MONTHLY:
        first = today.replace(day=1)
        previous = (first - timedelta(days=1)).replace(day=1)
        return Period(_local_midnight(previous), _local_midnight(first), preset="monthly")
    raise ReportInputError(f"Unknown report frequency {frequency!r}: choose weekly or monthly.")


def report_period(
    *,
    preset: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Period:
    """The report's period: a preset (`7d`: the last 7 days, the default; `weekly` / `monthly`: the last finished
    week or month, as the schedule sends them) or a custom range (`until` defaults to now), validated."""
    now = (now or timezone.now()).replace(microsecond=0)
    if since is None and until is None:
        preset = preset or "7d"
        if preset == "7d":
            return Period.ending(now, DEFAULT_SPAN, preset="7d")
        if preset in ReportFrequency.values:
            return scheduled_period(preset, now)
        raise ReportInputError(f"Unknown period {preset!r}: choose one of {', '.join(PRESETS)}.")
    if preset not in (None, "", "custom"):
        raise ReportInputError("Give either a preset period or a custom range (since/until), not both.")
    if since is None:
        raise ReportInputError("A custom range needs a start (since).")
    since, until = _aware(since), _aware(until or now)
    if since >= until:
        raise ReportInputError("The end of the range must be after its start.")
    if since > now:
        raise ReportInputError("The range starts in the future: nothing has happened there yet.")
    if until - since > MAX_SPAN:
        raise ReportInputError(f"A report covers at most {MAX_SPAN.days} days.")
    if until - since < MIN_SPAN:
        raise ReportInputError("A report covers at least an hour.")
    return Period(since=since, until=until, preset="custom")


def _aware(moment: datetime) -> datetime:
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


# --- figures ------------------------------------------------------------------------------------------------------


@dataclass
class OrgReport:
    """Everything the report shows, already counted: the HTML and the CSV are two renderings of this."""

    organization: Organization
    period: Period
    generated_at: datetime
    kpis: dict[str, Any]
    days: list[dict[str, Any]]
    threat_types: list[dict[str, Any]]
    top_blocked: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    sessions_total: int
    targets: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def filename_stem(self) -> str:
        since = timezone.localtime(self.period.since).strftime("%Y%m%d")
        until = timezone.localtime(self.period.until).strftime("%Y%m%d")
        return f"evalence-report-{slugify(self.organization.slug)}-{since}-{until}"


def _days(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """Every local day of the period, with its evaluations by decision (zeros included, so gaps show)."""
    rows = (
        selectors.evaluations_in(organization, period)
        .annotate(day=TruncDate("created_at"))
        .values("day", "decision")
        .annotate(count=Count("pk"))
        .order_by("day", "decision")
    )
    found: dict[date, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["day"], {})[row["decision"]] = row["count"]
    first = timezone.localtime(period.since).date()
    last = timezone.localtime(period.until - timedelta(microseconds=1)).date()
    days = []
    day = first
    while day <= last:
        counts = {decision: found.get(day, {}).get(decision, 0) for decision in DECISION_ORDER}
        days.append({"day": day, "counts": counts, "total": sum(counts.values())})
        day += timedelta(days=1)
    return days


def _threat_types(organization: Organization, period: Period) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    for row in selectors.threats_by_type_and_severity(organization, period):
        totals[row["threat_type"]] = totals.get(row["threat_type"], 0) + row["count"]
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [{"threat_type": key, "label": THREAT_LABELS.get(key, key), "count": count} for key, count in ranked]


def _shorten(text: str, limit: int = TOP_BLOCKED_CHARS) -> str:
    """One line of at most `limit` characters: whitespace runs folded, an ellipsis when cut."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _top_blocked(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """The texts blocked most often (grouped by normalized-text hash, as the overview's top patterns), with one of
    the texts behind each hash."""
    rows = selectors.top_threat_patterns(organization, period, limit=TOP_BLOCKED)
    texts = dict(
        selectors.evaluations_in(organization, period)
        .filter(decision=Decision.BLOCKED, text_hash__in=[row["text_hash"] for row in rows])
        .values("text_hash")
        .annotate(text=Min(Substr("text", 1, TOP_BLOCKED_CHARS * 2)))
        .values_list("text_hash", "text")
    )
    return [
        {
            "text": _shorten(texts.get(row["text_hash"], "")),
            "text_hash": row["text_hash"],
            "count": row["count"],
            "threat_type": row["threat_type"],
            "threat_label": THREAT_LABELS.get(row["threat_type"], row["threat_type"]),
        }
        for row in rows
    ]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _sessions(organization: Organization, period: Period) -> tuple[list[dict[str, Any]], int]:
    """Sessions completed in the period (by finish time), with their attack success rate and baseline refusals."""
    finished = TestSession.objects.for_org(organization).filter(
        status=SessionStatus.COMPLETED, finished_at__gte=period.since, finished_at__lt=period.until
    )
    total = finished.count()
    sessions = list(finished.select_related("target", "suite").order_by("finished_at", "pk")[:MAX_SESSIONS])
    counts: dict[tuple[Any, str], dict[str, int]] = {}
    if sessions:
        rows = (
            TestResult.objects.filter(organization=organization, session__in=[s.pk for s in sessions])
            .order_by()
            .values("session_id", "kind")
            .annotate(
                succeeded=Count("pk", filter=Q(verdict=Verdict.SUCCEEDED)),
                resisted=Count("pk", filter=Q(verdict=Verdict.RESISTED)),
                scored=Count("pk", filter=Q(verdict__in=SCORED_VERDICTS)),
            )
        )
        counts = {(row["session_id"], row["kind"]): row for row in rows}
    found = []
    for session in sessions:
        attack = counts.get((session.pk, ResultKind.ATTACK), {})
        base = counts.get((session.pk, ResultKind.BASELINE), {})
        found.append(
            {
                "id": str(session.pk),
                "name": str(session),
                "target": _config_value(session, "target") or "—",
                "finished_at": session.finished_at,
                "succeeded": attack.get("succeeded", 0),
                "scored": attack.get("scored", 0),
                "rate": _rate(attack.get("succeeded", 0), attack.get("scored", 0)),
                "baseline_scored": base.get("scored", 0),
                "baseline_refused": base.get("resisted", 0),
                "baseline_refusal_rate": _rate(base.get("resisted", 0), base.get("scored", 0)),
            }
        )
    return found, total


def _targets(organization: Organization, period: Period) -> list[dict[str, Any]]:
    """Attack success by category in the latest session of each target completed before the period's end (the
    overview's selector, bounded in time so an old period's report does not show later sessions)."""
    completed = TestSession.objects.for_org(organization).filter(
        status=SessionStatus.COMPLETED, target__isnull=False, finished_at__lt=period.until
    )
    newest = completed.filter(target=OuterRef("target")).order_by("-finished_at", "-pk").values("pk")[:1]
    sessions = list(
        completed.filter(pk=Subquery(newest)).select_related("target").order_by("-finished_at")[:MAX_TARGETS]
    )
    sessions.sort(key=lambda session: (session.target.name.casefold(), str(session.pk)))
    by_category = selectors.attack_success_by_category(sessions)
    return [
        {
            "target": session.target.name,
            "session": str(session),
            "session_id": str(session.pk),
            "finished_at": session.finished_at,
            "categories": [
                {"category": key, "label": CATEGORY_LABELS.get(key, key), **values}
                for key, values in sorted(by_category.get(session.pk, {}).items())
            ],
        }
        for session in sessions
    ]


def build_report(organization: Organization, period: Period, *, now: datetime | None = None) -> OrgReport:
    """The organization's report for the period. The firewall and session figures cover the period; the attack
    success by category is each target's latest session finished before its end; the bank size is the bank now."""
    kpis = selectors.overview_kpis(organization, period)
    sessions, sessions_total = _sessions(organization, period)
    notes = []
    if sessions_total > len(sessions):
        notes.append(f"The first {len(sessions)} of {sessions_total} completed sessions are listed.")
    return OrgReport(
        organization=organization,
        period=period,
        generated_at=now or timezone.now(),
        kpis=kpis,
        days=_days(organization, period),
        threat_types=_threat_types(organization, period),
        top_blocked=_top_blocked(organization, period),
        sessions=sessions,
        sessions_total=sessions_total,
        targets=_targets(organization, period),
        notes=notes,
    )


# --- HTML ---------------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _width(part: int, whole: int) -> str:
    """A bar's CSS width in percent, as a string (no locale formatting in the template)."""
    return f"{(part / whole * 100) if whole else 0:.2f}"


def report_context(report: OrgReport) -> dict[str, Any]:
    """The template's context: the figures as the page prints them, bar widths computed here, not in the template."""
    kpis = report.kpis
    busiest = max((day["total"] for day in report.days), default=0)
    top_threat = max((row["count"] for row in report.threat_types), default=0)
    top_blocked = max((row["count"] for row in report.top_blocked), default=0)
    return {
        "report": report,
        "organization": report.organization,
        "period": report.period,
        "kpi_cards": [
            ("Evaluations", f"{kpis['evaluations']:,}", "Inputs and outputs checked"),
            ("Blocked", f"{kpis['blocked']:,}", "Evaluations the firewall blocked"),
            ("Block rate", _pct(kpis["block_rate"]), "Blocked of all evaluations"),
            (
                "False-positive reports",
                f"{kpis['false_positives']:,}",
                f"{_pct(kpis['false_positive_rate'])} of {kpis['acted']:,} blocked or sanitized",
            ),
            ("Latency p50", _ms(kpis["latency_p50"]), "Median time to decide"),
            ("Latency p95", _ms(kpis["latency_p95"]), "95th percentile"),
            ("Sessions completed", f"{report.sessions_total:,}", "Red-team sessions finished in the period"),
            ("Prompt bank", f"{kpis['bank_size']:,}", "Active prompts, as of now"),
        ],
        "decisions": [(decision.value, decision.label) for decision in DECISION_ORDER],
        "days": [
            {
                **day,
                "segments": [
                    {
                        "decision": d.value,
                        "label": d.label,
                        "count": day["counts"][d],
                        "width": _width(day["counts"][d], busiest),
                    }
                    for d in DECISION_ORDER
                    if day["counts"][d]
                ],
                "ordered_counts": [day["counts"][d] for d in DECISION_ORDER],
            }
            for day in report.days
        ],
        "threat_types": [{**row, "width": _width(row["count"], top_threat)} for row in report.threat_types],
        "top_blocked": [{**row, "width": _width(row["count"], top_blocked)} for row in report.top_blocked],
        "sessions": [
            {**row, "rate_pct": _pct(row["rate"]), "baseline_pct": _pct(row["baseline_refusal_rate"])}
            for row in report.sessions
        ],
        "targets": [
            {
                **target,
                "categories": [
                    {**row, "rate_pct": _pct(row["rate"]), "width": _width(row["succeeded"], row["scored"])}
                    for row in target["categories"]
                ],
            }
            for target in report.targets
        ],
        "has_traffic": kpis["evaluations"] > 0,
    }


def render_html(report: OrgReport) -> str:
    """The report as one self-contained HTML document (the download and the e-mail body)."""
    return render_to_string("analytics/report.html", {**report_context(report), "interactive": False})


# --- CSV ----------------------------------------------------------------------------------------------------------


def csv_rows(report: OrgReport) -> list[tuple[str, str, str, Any]]:
    """The figures behind the report as (section, metric, dimension, value); rates are fractions, empty when
    nothing was counted."""
    kpis = report.kpis
    rows: list[tuple[str, str, str, Any]] = [
        ("report", "organization", "", report.organization.slug),
        ("report", "since", "", report.period.since.isoformat()),
        ("report", "until", "", report.period.until.isoformat()),
        ("report", "generated_at", "", report.generated_at.isoformat()),
        ("firewall", "evaluations", "", kpis["evaluations"]),
        ("firewall", "blocked", "", kpis["blocked"]),
        ("firewall", "block_rate", "", kpis["block_rate"]),
        ("firewall", "blocked_or_sanitized", "", kpis["acted"]),
        ("firewall", "false_positive_reports", "", kpis["false_positives"]),
        ("firewall", "false_positive_rate", "", kpis["false_positive_rate"]),
        ("firewall", "latency_p50_ms", "", kpis["latency_p50"]),
        ("firewall", "latency_p95_ms", "", kpis["latency_p95"]),
    ]
    for day in report.days:
        stamp = day["day"].isoformat()
        rows += [("evaluations_per_day", str(decision), stamp, day["counts"][decision]) for decision in DECISION_ORDER]
    rows += [("threat_types", "evaluations", row["threat_type"], row["count"]) for row in report.threat_types]
    for row in report.top_blocked:
        rows.append(("top_blocked", "blocked", row["text"], row["count"]))
    rows.append(("sessions", "completed", "", report.sessions_total))
    for session in report.sessions:
        label = f"{session['name']} [{session['id'][:8]}]"
        rows += [
            ("sessions", "attack_success_rate", label, session["rate"]),
            ("sessions", "attacks_succeeded", label, session["succeeded"]),
            ("sessions", "attacks_scored", label, session["scored"]),
            ("sessions", "baseline_refusal_rate", label, session["baseline_refusal_rate"]),
            ("sessions", "baseline_scored", label, session["baseline_scored"]),
        ]
    for target in report.targets:
        for row in target["categories"]:
            dimension = f"{target['target']} / {row['category']}"
            rows += [
                ("attack_success_by_category", "rate", dimension, row["rate"]),
                ("attack_success_by_category", "scored", dimension, row["scored"]),
            ]
    rows.append(("bank", "active_prompts", "", kpis["bank_size"]))
    return rows


def render_csv(report: OrgReport) -> str:
    """The figures as CSV, header first; text cells that a spreadsheet would run as a formula are defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in csv_rows(report):
        writer.writerow(["" if cell is None else _defuse(cell) for cell in row])
    return buffer.getvalue()


# --- the schedule -------------------------------------------------------------------------------------------------


def parse_recipients(text: str) -> list[str]:
    """E-mail addresses separated by lines, commas, semicolons or spaces: each validated, duplicates dropped (case
    ignored), at most MAX_RECIPIENTS."""
    found: list[str] = []
    seen: set[str] = set()
    invalid: list[str] = []
    for candidate in _RECIPIENT_SPLIT.split(text or ""):
        if not candidate:
            continue
        try:
            validate_email(candidate)
        except ValidationError:
            invalid.append(candidate)
            continue
        if candidate.casefold() not in seen:
            seen.add(candidate.casefold())
            found.append(candidate)
    if invalid:
        shown = ", ".join(_shorten(item, 60) for item in invalid[:3])
        more = f" and {len(invalid) - 3} more" if len(invalid) > 3 else ""
        raise ReportInputError(
            f"Not an e-mail address: {shown}{more}.", fields={"recipients": [f"Not an e-mail address: {shown}{more}."]}
        )
    if len(found) > MAX_RECIPIENTS:
        message = f"At most {MAX_RECIPIENTS} recipients ({len(found)} given)."
        raise ReportInputError(message, fields={"recipients": [message]})
    return found


def schedule_for(organization: Organization) -> ReportSchedule:
    """The organization's schedule, unsaved and off when none was ever set."""
    return ReportSchedule.objects.for_org(organization).first() or ReportSchedule(organization=organization)


@transaction.atomic
def report_schedule_update(
    *,
    organization: Organization,
    actor: User | None,
    enabled: bool,
    frequency: str,
    recipients: str | list[str],
    ip: str | None = None,
) -> ReportSchedule:
    """Set the organization's report schedule (validated: an enabled report needs a recipient) and audit what
    changed as an organization update."""
    addresses = parse_recipients(recipients if isinstance(recipients, str) else "\n".join(recipients))
    if frequency not in ReportFrequency.values:
        raise ReportInputError(f"Unknown frequency {frequency!r}.", fields={"frequency": ["Choose weekly or monthly."]})
    if enabled and not addresses:
        message = "An enabled report needs at least one recipient."
        raise ReportInputError(message, fields={"recipients": [message]})
    schedule, _ = ReportSchedule.objects.select_for_update().get_or_create(organization=organization)
    before = {"enabled": schedule.enabled, "frequency": schedule.frequency, "recipients": schedule.recipients}
    schedule.enabled, schedule.frequency, schedule.recipients = enabled, frequency, "\n".join(addresses)
    after = {"enabled": schedule.enabled, "frequency": schedule.frequency, "recipients": schedule.recipients}
    changes = {key: {"from": before[key], "to": after[key]} for key in before if before[key] != after[key]}
    if changes:
        if "frequency" in changes:
            schedule.last_period_end = None  # a new cadence starts from its own latest finished period
        schedule.full_clean()
        schedule.save()
        audit_log_write(
            organization=organization,
            action=AuditAction.REPORT_SCHEDULE_CHANGED,
            actor=actor,
            target=schedule,
            target_label="Report schedule",
            ip=ip,
            data={"object": "report_schedule", "changes": changes},
        )
    return schedule


def next_send(schedule: ReportSchedule, now: datetime | None = None) -> datetime | None:
    """When the schedule's next report becomes due (the end of the period not sent yet), None when it is off."""
    if not schedule.enabled:
        return None
    now = now or timezone.now()
    period = scheduled_period(schedule.frequency, now)
    if schedule.last_period_end is None or schedule.last_period_end < period.until:
        return period.until  # due already: the next run of the job sends it
    # The period after the latest finished one ends one full period after it.
    later = period.until + (timedelta(days=7) if schedule.frequency == ReportFrequency.WEEKLY else timedelta(days=32))
    return scheduled_period(schedule.frequency, later).until


# --- delivery -----------------------------------------------------------------------------------------------------


def report_email(report: OrgReport, recipients: list[str], frequency: str) -> EmailMultiAlternatives:
    """One message: a short text body, the HTML report as the alternative, the CSV attached."""
    since = timezone.localtime(report.period.since)
    until = timezone.localtime(report.period.until - timedelta(microseconds=1))
    span = f"{since:%Y-%m-%d} to {until:%Y-%m-%d}"
    kpis = report.kpis
    subject = f"Evalence {frequency} report for {report.organization.name}: {span}"
    text = (
        f"{report.organization.name}, {span} ({settings.TIME_ZONE}).\n\n"
        f"Evaluations: {kpis['evaluations']:,}; blocked: {kpis['blocked']:,} ({_pct(kpis['block_rate'])}); "
        f"false-positive reports: {kpis['false_positives']:,}.\n"
        f"Latency p50 / p95: {_ms(kpis['latency_p50'])} / {_ms(kpis['latency_p95'])}.\n"
        f"Red-team sessions completed: {report.sessions_total:,}.\n\n"
        f"The full report is in the HTML part of this message; its figures are attached as CSV.\n"
        f"Open it in Evalence: {settings.SITE_URL}/analytics/report/\n"
    )
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to=recipients)
    message.attach_alternative(render_html(report), "text/html")
    message.attach(f"{report.filename_stem}.csv", render_csv(report), "text/csv")
    return message


@dataclass
class Delivery:
    """What one run of `send_due_reports` did, by organization slug."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"sent": self.sent, "failed": self.failed}


def send_due_reports(now: datetime | None = None) -> Delivery:
    """Send every enabled schedule's latest finished period that has not been sent yet, one e-mail each.

    Each schedule is handled in its own transaction with its row locked (skipped when another run holds it), the
    period re-checked under the lock, and `last_period_end` set only after the message went out; a failure is
    recorded in `last_error` and the same period is tried again at the next run."""
    now = now or timezone.now()
    outcome = Delivery()
    for pk in ReportSchedule.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            schedule = (
                ReportSchedule.objects.select_for_update(skip_locked=True)
                .select_related("organization")
                .filter(pk=pk, enabled=True)
                .first()
            )
            if schedule is None:
                continue
            period = scheduled_period(schedule.frequency, now)
            if schedule.last_period_end is not None and schedule.last_period_end >= period.until:
                continue
            slug = schedule.organization.slug
            try:
                with transaction.atomic():  # a savepoint: a database error here still lets the failure be recorded
                    recipients = parse_recipients(schedule.recipients)
                    if not recipients:
                        raise ReportInputError("The schedule has no recipients.")
                    report = build_report(schedule.organization, period, now=now)
                    report_email(report, recipients, schedule.frequency).send(fail_silently=False)
            except Exception as exc:  # any delivery failure is recorded and retried; one org never stops the rest
                logger.warning("report for %s (%s) not sent: %s", slug, period.until.isoformat(), exc)
                schedule.last_error = f"{timezone.localtime(now):%Y-%m-%d %H:%M}: {type(exc).__name__}: {exc}"[:2000]
                schedule.save(update_fields=["last_error", "updated_at"])
                outcome.failed.append(slug)
                continue
            schedule.last_sent_at = now
            schedule.last_period_end = period.until
            schedule.last_error = ""
            schedule.save(update_fields=["last_sent_at", "last_period_end", "last_error", "updated_at"])
            outcome.sent.append(slug)
    return outcome
