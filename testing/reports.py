"""Session exports: a printable HTML report, CSV, JSON, JUnit XML (for CI test views) and SARIF 2.1.0 (for code
scanning dashboards).

Every format reads the session's rows once, in order, through `.iterator()`, and takes its figures from
`stats.session_summary`, so an export and the session page never disagree. Text from the target is hostile by
assumption: HTML escapes it (the template engine's autoescape), CSV defuses spreadsheet formulas, XML drops the
characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree import ElementTree as ET

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Case, IntegerField, Value, When
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from promptbank.choices import SEVERITY_RANK, Category, Severity
from testing.choices import ResultKind, Verdict
from testing.models import TestResult, TestSession
from testing.stats import session_summary

EXPORT_FORMATS = ("html", "csv", "json", "junit", "sarif")
CONTENT_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "junit": "application/xml",
    "sarif": "application/sarif+json",
}
EXTENSIONS = {"html": "html", "csv": "csv", "json": "json", "junit": "junit.xml", "sarif": "sarif"}

CSV_COLUMNS = (
    "item_key",
    "kind",
    "category",
    "severity",
    "mutator",
    "generation",
    "verdict",
    "judge_verdict",
    "reason",
    "prompt_text",
    "response",
    "latency_ms",
    "error",
    "overridden",
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

HTML_MAX_FINDINGS = 500
HTML_MAX_ERRORS = 200
HTML_TEXT_CHARS = 2000
SARIF_RESPONSE_CHARS = 500
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}

# XML 1.0 allows tab, LF, CR and these ranges only; anything else makes the document unparsable.
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

CATEGORY_DESCRIPTIONS = {
    Category.PROMPT_INJECTION: "The target followed instructions injected into its input instead of its own.",
    Category.JAILBREAK: "The target dropped its safety rules under a persona, role-play or similar framing.",
    Category.DATA_EXTRACTION: "The target disclosed data it holds (secrets, personal data, documents) to the attacker.",
    Category.SYSTEM_PROMPT_LEAK: "The target revealed its system prompt or the canary planted in it.",
    Category.ENCODING_OBFUSCATION: "The target acted on an attack hidden by encoding or obfuscation.",
    Category.HARMFUL_REQUEST: "The target complied with a request for harmful content.",
    Category.BENIGN: "A benign prompt recorded as a finding.",
}


# --- shared helpers ----------------------------------------------------------------------------------------------


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value or "—"


def _config_value(session: TestSession, key: str, attribute: str = "name") -> str:
    """A field of the target or suite as the session ran it (the config snapshot), else the live row."""
    snapshot = (session.config or {}).get(key)
    if isinstance(snapshot, dict) and snapshot.get(attribute):
        return str(snapshot[attribute])
    if isinstance(snapshot, str) and attribute == "name":
        return snapshot
    live = getattr(session, key, None)
    return str(getattr(live, attribute, "") or "") if live is not None else ""


def _severity_rank() -> Case:
    return Case(
        *(When(severity=severity, then=Value(rank)) for severity, rank in SEVERITY_RANK.items()),
        default=Value(-1),
        output_field=IntegerField(),
    )


def _filename(session: TestSession, fmt: str) -> str:
    stem = slugify(session.name)[:60] or "session"
    return f"evalence-{stem}-{str(session.pk)[:8]}.{EXTENSIONS[fmt]}"


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _ci_text(ci: list[float]) -> str:
    return f"{ci[0] * 100:.1f}-{ci[1] * 100:.1f}%"


def _clip(text: str, limit: int) -> dict[str, Any]:
    """Text for the report with, when cut, the full length so that the reader knows something is missing."""
    text = text or ""
    if len(text) <= limit:
        return {"text": text, "full_length": 0}
    return {"text": text[:limit], "full_length": len(text)}


def _session_info(session: TestSession) -> dict[str, Any]:
    return {
        "id": str(session.pk),
        "name": str(session),
        "status": session.status,
        "target": _config_value(session, "target"),
        "suite": _config_value(session, "suite"),
        "config": session.config,
        "total_samples": session.total_samples,
        "completed_samples": session.completed_samples,
        "counts": session.counts,
        "created_at": session.created_at,
        "started_at": session.started_at,
        "finished_at": session.finished_at,
        "duration_s": session.duration_s,
        "error": session.error,
    }


# --- CSV ---------------------------------------------------------------------------------------------------------


class _Line:
    """A write-only file for csv.writer that hands back each row it is given (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def _defuse(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def iter_csv(session: TestSession) -> Iterator[str]:
    """The session's results as CSV lines, header first, read in chunks: fit for a StreamingHttpResponse."""
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    rows = (
        TestResult.objects.filter(session=session)
        .order_by("sequence", "item_key")
        .values_list(*CSV_COLUMNS[:-1], "overridden_at")
    )
    for row in rows.iterator(chunk_size=1000):
        cells = [_defuse(cell) for cell in row[:-1]]
        cells.append("true" if row[-1] is not None else "false")
        yield writer.writerow(["" if cell is None else cell for cell in cells])


# --- JSON --------------------------------------------------------------------------------------------------------

JSON_RESULT_FIELDS = (
    "id",
    "item_key",
    "kind",
    "sequence",
    "prompt_id",
    "prompt_version",
    "category",
    "severity",
    "mutator",
    "generation",
    "original_text",
    "prompt_text",
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
    "overridden_at",
    "override_reason",
)


def _json(session: TestSession) -> bytes:
    rows = TestResult.objects.filter(session=session).order_by("sequence", "item_key").values(*JSON_RESULT_FIELDS)
    results = []
    for row in rows.iterator(chunk_size=1000):
        row["overridden"] = row["overridden_at"] is not None
        results.append(row)
    document = {"session": _session_info(session), "summary": session_summary(session), "results": results}
    return json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode("utf-8")


# --- JUnit XML ---------------------------------------------------------------------------------------------------


def _xml_text(value: Any) -> str:
    return _XML_FORBIDDEN.sub("\ufffd", "" if value is None else str(value))


def _junit(session: TestSession) -> bytes:
    """One testsuite per category, one testcase per attack: a successful attack is a failed test."""
    root = ET.Element("testsuites", name=_xml_text(f"Evalence: {session}"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites: dict[str, tuple[ET.Element, dict[str, int]]] = {}
    rows = (
        TestResult.objects.filter(session=session, kind=ResultKind.ATTACK)
        .order_by("category", "sequence", "item_key")
        .values_list("category", "item_key", "severity", "mutator", "verdict", "reason", "error", "latency_ms")
    )
    for category, item_key, severity, mutator, verdict, reason, error, latency_ms in rows.iterator(chunk_size=2000):
        if category not in suites:
            element = ET.SubElement(root, "testsuite", name=_xml_text(category))
            suites[category] = (element, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
        suite, counts = suites[category]
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml_text(f"evalence.{category}"),
            name=_xml_text(item_key),
            time=f"{(latency_ms or 0) / 1000:.3f}",
        )
        counts["tests"] += 1
        if verdict == Verdict.SUCCEEDED:
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", message=_xml_text(reason or "The attack succeeded."))
            failure.set("type", "attack_succeeded")
            failure.text = _xml_text(f"severity={severity} mutator={mutator or 'none'}\n{reason}")
        elif verdict == Verdict.ERROR:
            counts["errors"] += 1
            element = ET.SubElement(case, "error", message=_xml_text(error or "The request failed."))
            element.text = _xml_text(error)
        elif verdict in (Verdict.UNSCORABLE, Verdict.PENDING):
            counts["skipped"] += 1
            note = reason or ("The answer could not be scored." if verdict == Verdict.UNSCORABLE else "Not run.")
            ET.SubElement(case, "skipped", message=_xml_text(note))
    for suite, counts in suites.values():
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- SARIF -------------------------------------------------------------------------------------------------------


def _sarif(session: TestSession) -> bytes:
    """SARIF 2.1.0: one rule per attack category in the session, one result per successful attack."""
    target = _config_value(session, "target") or "target"
    attacks = TestResult.objects.filter(session=session, kind=ResultKind.ATTACK)
    categories = sorted(set(attacks.order_by().values_list("category", flat=True).distinct()))
    rule_index = {category: index for index, category in enumerate(categories)}
    rules = [
        {
            "id": category,
            "name": "".join(part.title() for part in category.split("_")),
            "shortDescription": {"text": _label(Category, category)},
            "fullDescription": {"text": CATEGORY_DESCRIPTIONS.get(category, f"A successful {category} attack.")},
        }
        for category in categories
    ]
    results = []
    rows = (
        attacks.filter(verdict=Verdict.SUCCEEDED)
        .order_by("sequence", "item_key")
        .values_list("category", "severity", "item_key", "mutator", "generation", "prompt_text", "response", "reason")
    )
    for category, severity, item_key, mutator, generation, prompt_text, response, reason in rows.iterator(
        chunk_size=1000
    ):
        results.append(
            {
                "ruleId": category,
                "ruleIndex": rule_index[category],
                "level": SARIF_LEVELS.get(severity, "warning"),
                "message": {"text": f"{_label(Category, category)} attack succeeded against {target}: {reason}"},
                "locations": [{"logicalLocations": [{"name": target, "kind": "resource"}]}],
                "properties": {
                    "item_key": item_key,
                    "severity": severity,
                    "mutator": mutator,
                    "generation": generation,
                    "prompt_text": prompt_text,
                    "response_excerpt": response[:SARIF_RESPONSE_CHARS],
                },
            }
        )
    summary = session_summary(session)
    invocation: dict[str, Any] = {"executionSuccessful": session.status == "completed"}
    if session.started_at:
        invocation["startTimeUtc"] = session.started_at.isoformat()
    if session.finished_at:
        invocation["endTimeUtc"] = session.finished_at.isoformat()
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "Evalence", "rules": rules}},
                "invocations": [invocation],
                "results": results,
                "properties": {
                    "session_id": str(session.pk),
                    "target": target,
                    "suite": _config_value(session, "suite"),
                    "attack_success_rate": summary["attack_success_rate"],
                    "ci95": summary["ci95"],
                },
            }
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


# --- HTML --------------------------------------------------------------------------------------------------------


def _table_rows(groups: dict[str, dict[str, Any]], label: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {**block, "label": label(key), "rate_pct": _pct(block["rate"]), "ci_text": _ci_text(block["ci95"])}
        for key, block in groups.items()
    ]


def _html(session: TestSession) -> bytes:
    summary = session_summary(session)
    attacks = TestResult.objects.filter(session=session, kind=ResultKind.ATTACK)
    findings_qs = (
        attacks.filter(verdict=Verdict.SUCCEEDED)
        .annotate(severity_rank=_severity_rank())
        .order_by("-severity_rank", "category", "sequence")
        .only(
            "item_key",
            "category",
            "severity",
            "mutator",
            "generation",
            "prompt_text",
            "response",
            "reason",
            "verdict",
            "judge_verdict",
            "overridden_at",
            "override_reason",
        )
    )
    findings = [
        {
            "item_key": row.item_key,
            "category": _label(Category, row.category),
            "severity": row.severity,
            "mutator": row.mutator or "none",
            "generation": row.generation,
            "prompt": _clip(row.prompt_text, HTML_TEXT_CHARS),
            "response": _clip(row.response, HTML_TEXT_CHARS),
            "reason": _clip(row.reason, HTML_TEXT_CHARS),
            "verdict": row.get_verdict_display(),
            "overridden": row.overridden_at is not None,
            "judge_verdict": row.judge_verdict,
            "override_reason": row.override_reason,
        }
        for row in findings_qs[:HTML_MAX_FINDINGS]
    ]
    errors = [
        {
            "item_key": row.item_key,
            "category": _label(Category, row.category),
            "http_status": row.http_status,
            "attempts": row.attempts,
            "error": _clip(row.error, HTML_TEXT_CHARS),
        }
        for row in attacks.filter(verdict=Verdict.ERROR)
        .order_by("sequence")
        .only("item_key", "category", "http_status", "attempts", "error")[:HTML_MAX_ERRORS]
    ]
    baseline = summary["baseline"]
    context = {
        "session": _session_info(session),
        "target_kind": _config_value(session, "target", "kind"),
        "target_model": _config_value(session, "target", "model"),
        "generated_at": timezone.now(),
        "summary": summary,
        "asr_pct": _pct(summary["attack_success_rate"]),
        "asr_ci": _ci_text(summary["ci95"]),
        "baseline": {
            **baseline,
            "rate_pct": _pct(baseline["rate"]),
            "ci_text": _ci_text(baseline["ci95"]),
            "refusal_pct": _pct(baseline["refusal_rate"]),
        },
        "categories": _table_rows(summary["by_category"], lambda key: _label(Category, key)),
        "severities": _table_rows(summary["by_severity"], lambda key: _label(Severity, key)),
        "mutators": _table_rows(summary["by_mutator"], lambda key: key or "none (original)"),
        "top_prompts": [
            {**item, "category": _label(Category, item["category"]), "rate_pct": _pct(item["rate"])}
            for item in summary["top_prompts"]
        ],
        "findings": findings,
        "findings_hidden": max(0, summary["succeeded"] - len(findings)),
        "errors": errors,
        "errors_hidden": max(0, summary["errors"] - len(errors)),
        "text_limit": HTML_TEXT_CHARS,
    }
    return render_to_string("testing/report.html", context).encode("utf-8")


_EXPORTERS: dict[str, Callable[[TestSession], bytes]] = {
    "html": _html,
    "csv": lambda session: "".join(iter_csv(session)).encode("utf-8"),
    "json": _json,
    "junit": _junit,
    "sarif": _sarif,
}


def export_session(session: TestSession, fmt: str) -> tuple[bytes, str, str]:
    """The session in one of `EXPORT_FORMATS`: (body, content type, download file name)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}.")
    return _EXPORTERS[fmt](session), CONTENT_TYPES[fmt], _filename(session, fmt)
