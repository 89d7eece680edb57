"""Exports of the prompt bank as JSON lines or CSV: a filtered set of current prompts, or a release's frozen versions.

Exports stream (one row at a time, the database read in chunks), so a bank of any size is written with flat memory,
whether to a file (the `promptbank_export` command) or to an HTTP response (the API). A release is exported from its
`ReleaseEntry` rows, i.e. the exact `PromptVersion` each entry points at: the export shows the text and fields the
release froze, even after the prompts were edited since.

The JSONL field names are the ones the importer reads (text, label, category, severity, tags, ...), so an export
re-imports through the pipeline into another bank or instance.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Organization
from evalence.errors import ValidationFailed
from promptbank.models import BankRelease, Prompt, ReleaseEntry

FORMATS = ("jsonl", "csv")
COLUMNS = (
    "id",
    "text",
    "label",
    "category",
    "subcategory",
    "attack_type",
    "severity",
    "tags",
    "language",
    "source",
    "source_ref",
    "license",
    "version",
    "is_active",
    "quality_score",
    "variant_of",
    "mutator",
    "created_at",
)
CHUNK_SIZE = 2000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such cells get a quote first.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Valid inside JSON strings, but line breaks to `str.splitlines()`: escaped so one record is one line for any reader.
_LINE_BREAKS_IN_JSON = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def check_format(fmt: str) -> str:
    """The normalized format name, or ValidationFailed naming the known ones."""
    normalized = (fmt or "").strip().lower()
    if normalized not in FORMATS:
        raise ValidationFailed(
            f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}.", fields={"format": ["unknown format"]}
        )
    return normalized


def export_lines(
    *, prompts: Iterable[Prompt] | None = None, release: BankRelease | None = None, fmt: str
) -> Iterator[str]:
    """Yield the export one record at a time, each string ending with its line break (CSV: the header first).

    Give either `prompts` (a queryset, already scoped and filtered by the caller, is read with `.iterator()`) or a
    `release`. Raises ValidationFailed for an unknown format or for both / neither source, before yielding anything.
    """
    fmt = check_format(fmt)
    if (prompts is None) == (release is None):
        raise ValidationFailed("Export either a set of prompts or a release, not both or neither.")
    rows = _release_rows(release) if release is not None else _prompt_rows(prompts)  # type: ignore[arg-type]
    return _jsonl(rows) if fmt == "jsonl" else _csv(rows)


def export_filename(organization: Organization | None, release: BankRelease | None, fmt: str) -> str:
    """`promptbank-<org slug or global>-v<release>.<fmt>`, or `-<UTC date>` for the current bank."""
    fmt = check_format(fmt)
    scope = organization.slug if organization is not None else "global"
    if release is not None:
        return f"promptbank-{scope}-v{release.version}.{fmt}"
    return f"promptbank-{scope}-{timezone.now().astimezone(UTC):%Y%m%d-%H%M%S}.{fmt}"


# --- rows ---------------------------------------------------------------------------------------------------------


def _prompt_rows(prompts: Iterable[Prompt]) -> Iterator[dict[str, Any]]:
    if isinstance(prompts, QuerySet):
        prompts = prompts.iterator(chunk_size=CHUNK_SIZE)
    for prompt in prompts:
        yield {
            "id": str(prompt.pk),
            "text": prompt.text,
            "label": prompt.label,
            "category": prompt.category,
            "subcategory": prompt.subcategory,
            "attack_type": prompt.attack_type,
            "severity": prompt.severity,
            "tags": list(prompt.tags or []),
            "language": prompt.language,
            "source": prompt.source,
            "source_ref": prompt.source_ref,
            "license": prompt.license,
            "version": prompt.version,
            "is_active": prompt.is_active,
            "quality_score": prompt.quality_score,
            "variant_of": str(prompt.variant_of_id) if prompt.variant_of_id else None,
            "mutator": prompt.mutator,
            "created_at": _iso(prompt.created_at),
        }


def _release_rows(release: BankRelease) -> Iterator[dict[str, Any]]:
    entries = (
        ReleaseEntry.objects.filter(release=release)
        .select_related("prompt_version", "prompt")
        .order_by("prompt__created_at", "prompt_id")
    )
    for entry in entries.iterator(chunk_size=CHUNK_SIZE):
        version, prompt = entry.prompt_version, entry.prompt
        frozen = version.fields or {}

        def field(name: str, _frozen: dict = frozen, _prompt: Prompt = prompt) -> Any:
            # A version row holds every versioned field; the prompt's current value only fills a key it lacks.
            return _frozen[name] if name in _frozen else getattr(_prompt, name)

        yield {
            "id": str(prompt.pk),
            "text": version.text,
            "label": field("label"),
            "category": field("category"),
            "subcategory": field("subcategory"),
            "attack_type": field("attack_type"),
            "severity": field("severity"),
            "tags": list(field("tags") or []),
            "language": field("language"),
            "source": field("source"),
            "source_ref": field("source_ref"),
            "license": field("license"),
            "version": version.version,
            "is_active": field("is_active"),
            "quality_score": None,  # a score belongs to the current prompt, not to a frozen version
            "variant_of": str(prompt.variant_of_id) if prompt.variant_of_id else None,
            "mutator": prompt.mutator,
            "created_at": _iso(prompt.created_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


# --- formats ------------------------------------------------------------------------------------------------------


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS_IN_JSON) + "\n"


def csv_cell(value: Any) -> str:
    """One CSV cell: tags `;`-joined, booleans as true/false, None empty, and a formula guard on every text cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")

    def line(cells: Iterable[Any]) -> str:
        writer.writerow(cells)
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    yield line(COLUMNS)
    for row in rows:
        yield line(csv_cell(row[column]) for column in COLUMNS)
