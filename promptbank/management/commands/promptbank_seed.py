"""`manage.py promptbank_seed [--file PATH]`: load the shipped seed bank into the GLOBAL bank, through the pipeline.

Safe to run again: the second run adds nothing (every row is a duplicate). Prints one JSON line of counts last:
`{"received", "accepted", "duplicates", "near_duplicates", "rejected"}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import service_errors
from promptbank.seed import SEED_FILE, seed_bank


class Command(BaseCommand):
    help = "Load the shipped seed prompts into the global bank (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", type=Path, default=None, help=f"A JSONL file of the same shape (default: {SEED_FILE.name})."
        )

    def handle(self, *args: Any, file: Path | None = None, **options: Any) -> None:
        if file is not None and not file.is_file():
            raise CommandError(f"No such file: {file}")
        with service_errors():
            run = seed_bank(path=file)
        for error in run.errors[:20]:
            self.stdout.write(error["reason"])
        self.stdout.write(json.dumps(run.counts()))
