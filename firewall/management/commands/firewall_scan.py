"""`manage.py firewall_scan --org SLUG --input PATH [--output PATH] [--direction input|output] [--store]`

Evaluates every line of a JSON-lines file (`{"text": "...", "id": optional}`) under the organization's policy, as the
API would but without an API key (so no rate limit), and writes one JSON line per input: `id` (the line number when
missing), `decision`, `confidence`, `threat_type`, `severity`, `latency_ms` — to --output, or to stdout. The LAST line
of stdout is a JSON summary: counts per decision, total, mean/p50/p99 latency, whether the evaluations were stored,
and the lines that could not be evaluated (`errors: [{"line": n, "reason": "..."}]`). A bad line does not stop the
scan; only a fatal problem (unknown organization, unreadable input) exits non-zero, with one line on stderr.

Without --store nothing is written to the database (a dry run of a data set against the current policy); with it,
each evaluation is stored with `source="scan"` and feeds threat patterns like live traffic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import organization_by_slug
from accounts.models import Organization
from evalence.errors import ApplicationError
from firewall.choices import Decision, Direction, EvaluationSource
from firewall.services import EvaluationRequest, evaluate

ERRORS_LISTED = 1000  # the summary lists this many bad lines; `errors_total` counts them all


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (0.0 for none)."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, decoded line) per line; None for a line that is not UTF-8."""
    for number, raw in enumerate(stream, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _parse(line: str | None) -> tuple[dict[str, Any] | None, str]:
    """The record of a line, or None and why it cannot be evaluated."""
    if line is None:
        return None, "not UTF-8"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(record, dict):
        return None, "a line must be a JSON object"
    text = record.get("text")
    if not isinstance(text, str):
        return None, "missing text" if text is None else "text must be a string"
    if not text.strip():
        return None, "text is empty"
    return record, ""


def scan(
    *,
    organization: Organization,
    lines: Iterable[tuple[int, str | None]],
    direction: str,
    store: bool,
    emit: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Evaluate each line and `emit` its result; return the summary. Bad lines are listed in it, not raised."""
    decisions = dict.fromkeys(Decision.values, 0)
    latencies: list[float] = []
    errors: list[dict[str, Any]] = []
    errors_total = 0
    total = 0
    for number, line in lines:
        if line is not None and not line.strip():
            continue  # blank lines (a trailing newline) are not inputs
        total += 1
        record, reason = _parse(line)
        outcome = None
        if record is not None:
            try:
                outcome = evaluate(
                    organization=organization,
                    request=EvaluationRequest(text=record["text"], direction=direction),
                    source=EvaluationSource.SCAN,
                    store=store,
                )
            except ApplicationError as exc:
                reason = exc.message
        if outcome is None:
            errors_total += 1
            if len(errors) < ERRORS_LISTED:
                errors.append({"line": number, "reason": reason})
            continue
        verdict = outcome.verdict
        decisions[verdict.decision] = decisions.get(verdict.decision, 0) + 1
        latencies.append(outcome.latency_ms)
        result = {
            "id": record.get("id", number) if record is not None else number,
            "decision": verdict.decision,
            "confidence": verdict.confidence,
            "threat_type": verdict.threat_type,
            "severity": verdict.severity,
            "latency_ms": outcome.latency_ms,
        }
        if outcome.evaluation_id:
            result["evaluation_id"] = outcome.evaluation_id
        emit(result)
    latencies.sort()
    return {
        "organization": organization.slug,
        "total": total,
        "evaluated": len(latencies),
        "decisions": decisions,
        "latency_ms": {
            "mean": round(sum(latencies) / len(latencies), 3) if latencies else 0.0,
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
        },
        "stored": store,
        "errors_total": errors_total,
        "errors": errors,
    }


class Command(BaseCommand):
    help = "Evaluate every line of a JSON-lines file under an organization's firewall policy."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Slug of the organization whose policy applies.")
        parser.add_argument("--input", required=True, help='JSON lines: {"text": "...", "id": optional} per line.')
        parser.add_argument("--output", help="Write the results here (default: stdout, before the summary).")
        parser.add_argument("--direction", choices=Direction.values, default=Direction.INPUT, help="Default: input.")
        parser.add_argument(
            "--store", action="store_true", help="Store each evaluation (source scan); default: evaluate only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_slug(options["org"])
        source = Path(options["input"]).expanduser()
        if not source.is_file():
            raise CommandError(f"Input file {source} does not exist (or is not a file).")
        output = Path(options["output"]).expanduser() if options["output"] else None
        if output is not None and (output.is_dir() or not output.parent.is_dir()):
            raise CommandError(f"Cannot write the results to {output}: give a file in an existing directory.")
        try:
            stream = source.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot read {source}: {exc.strerror}.") from exc
        with stream, output.open("w", encoding="utf-8") if output else _Stdout(self) as sink:
            summary = scan(
                organization=organization,
                lines=_lines(stream),
                direction=options["direction"],
                store=options["store"],
                emit=lambda result: sink.write(json.dumps(result, ensure_ascii=False) + "\n"),
            )
        self.stdout.write(json.dumps(summary, ensure_ascii=False))


class _Stdout:
    """The command's stdout as a context manager that `write`s whole lines (and is not closed after)."""

    def __init__(self, command: BaseCommand):
        self.command = command

    def write(self, text: str) -> None:
        self.command.stdout.write(text, ending="")

    def __enter__(self) -> _Stdout:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
