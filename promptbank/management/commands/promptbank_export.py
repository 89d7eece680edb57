"""`manage.py promptbank_export --out PATH [--org SLUG] [--release VERSION] [--format jsonl|csv] [--category C ...]
[--label attack|benign] [--include-inactive]`

Without --org it exports the global bank (or a global release); with --org, what that organization sees: its own
prompts plus the global bank (or one of its releases). The file is written next to PATH and renamed into place, so a
reader never sees half an export. The last line of stdout is `{"rows": N, "path": "..."}`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils.datastructures import MultiValueDict

from accounts.management.commands._helpers import organization_by_slug, service_errors
from accounts.models import Organization
from promptbank.exports import FORMATS, export_lines
from promptbank.filters import PromptFilter
from promptbank.models import BankRelease, Prompt


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = "Export the prompt bank (current prompts or a release) as JSON lines or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="File to write (replaced atomically).")
        parser.add_argument("--org", help="Organization slug: its own prompts plus the global bank (default: global).")
        parser.add_argument("--release", help="Export this release's frozen prompt versions, e.g. 1.2.0.")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jsonl", help="Default: jsonl.")
        parser.add_argument(
            "--category",
            action="extend",
            type=_comma_list,
            default=[],
            help="Only these categories (repeat, or comma-separated).",
        )
        parser.add_argument("--label", help="Only attack or benign prompts.")
        parser.add_argument(
            "--include-inactive", action="store_true", help="Also deactivated prompts (default: active only)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_slug(options["org"]) if options["org"] else None
        fmt: str = options["fmt"]
        out = Path(options["out"]).expanduser()
        if out.is_dir():
            raise CommandError(f"--out {out} is a directory; give a file path.")
        if not out.parent.is_dir():
            raise CommandError(f"Directory {out.parent} does not exist.")

        if options["release"]:
            if options["category"] or options["label"] or options["include_inactive"]:
                raise CommandError(
                    "A release is exported whole: --category, --label and --include-inactive do not apply."
                )
            release = self._release(organization, options["release"])
            source: dict[str, Any] = {"release": release}
        else:
            source = {"prompts": self._prompts(organization, options)}

        with service_errors():
            rows = self._write_atomically(out, export_lines(fmt=fmt, **source))
        if fmt == "csv":
            rows -= 1  # the header
        self.stdout.write(json.dumps({"rows": rows, "path": str(out.resolve())}))

    def _release(self, organization: Organization | None, version: str) -> BankRelease:
        """The scope's release of that version; an organization also sees the global bank's releases."""
        wanted = version.strip().removeprefix("v")
        if organization is None:
            candidates = BankRelease.objects.global_rows()
        else:
            # Its own release first when both it and the global bank have one numbered alike.
            candidates = BankRelease.objects.for_org(organization, include_global=True).order_by(
                Case(When(organization=organization, then=Value(0)), default=Value(1), output_field=IntegerField())
            )
        release = candidates.filter(version=wanted).first()
        if release is None:
            known = ", ".join(candidates.order_by("-major", "-minor", "-patch").values_list("version", flat=True)[:20])
            scope = f"organization {organization.slug}" if organization else "the global bank"
            raise CommandError(f"No release {wanted} in {scope} (known: {known or 'none yet'}).")
        return release

    def _prompts(self, organization: Organization | None, options: dict[str, Any]) -> QuerySet[Prompt]:
        if organization is None:
            prompts = Prompt.objects.global_rows()
        else:
            prompts = Prompt.objects.for_org(organization, include_global=True)
        data = MultiValueDict({"category": options["category"]})
        if options["label"]:
            data["label"] = options["label"]
        if not options["include_inactive"]:
            data["active"] = "true"
        filterset = PromptFilter(data=data, queryset=prompts)
        if not filterset.is_valid():
            problems = "; ".join(
                f"--{name}: {' '.join(str(m) for m in messages)}" for name, messages in filterset.errors.items()
            )
            raise CommandError(problems)
        return filterset.qs.order_by("created_at", "id")

    def _write_atomically(self, out: Path, lines: Any) -> int:
        """Write to a temporary file in the same directory, then rename it over `out`; returns the lines written."""
        count = 0
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                for line in lines:
                    handle.write(line)
                    count += 1
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, out)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return count
