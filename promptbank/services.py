"""Writes to the prompt bank: prompts and their versions, variants, the review queue, releases, imports and usage
statistics. Everything that adds prompts goes through the ingestion pipeline (`promptbank.pipeline`), so a prompt
created by hand, by a mutator, by an accepted submission or by a file import is validated, normalized, de-duplicated,
classified, tagged and scored the same way.

Services take plain arguments (an organization, not a request). `organization=None` means the global bank, which
only superusers (the admin, commands) write to; API and page views always pass the caller's organization.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from accounts.models import ApiKey, Organization, User
from promptbank.models import BankRelease, IngestionRun, Prompt, Submission

# --- prompts ------------------------------------------------------------------------------------------------------


@dataclass
class PromptCreated:
    """What `prompt_create` did: `status` is "accepted", "duplicate" (the existing prompt is returned) or
    "near_duplicate" (stored, linked to its near duplicate)."""

    prompt: Prompt
    status: str


def prompt_create(
    *,
    organization: Organization | None,
    text: str,
    label: str,
    category: str = "",
    severity: str = "",
    tags: Iterable[str] = (),
    subcategory: str = "",
    attack_type: str = "",
    language: str = "",
    source: str = "manual",
    source_ref: str = "",
    license: str = "",
    author: User | None = None,
) -> PromptCreated:
    """Add one prompt through the pipeline. Raises ValidationFailed (with the pipeline's reason) for a bad record."""
    raise NotImplementedError


def prompt_update(*, prompt: Prompt, actor: User | None, change_note: str = "", **changes: Any) -> Prompt:
    """Change a prompt's versioned fields (see `Prompt.VERSIONED_FIELDS`); writes a new `PromptVersion` when anything
    changed. A new text is re-normalized; one that duplicates another prompt in scope raises Conflict."""
    raise NotImplementedError


def prompt_set_active(*, prompt: Prompt, active: bool, actor: User | None) -> Prompt:
    """Deactivate (or reactivate) a prompt: a new version, so releases keep what they had."""
    raise NotImplementedError


def variants_create(
    *, prompt: Prompt, mutators: Iterable[str], organization: Organization | None, actor: User | None
) -> list[PromptCreated]:
    """Make one variant per mutator (see `promptbank.mutators`), each its own prompt linked to `prompt` by
    `variant_of`, in `organization`'s bank (a tenant can make variants of global prompts into its own bank)."""
    raise NotImplementedError


# --- submissions --------------------------------------------------------------------------------------------------


def submission_create(
    *,
    organization: Organization,
    text: str,
    label: str = "attack",
    category: str = "",
    severity: str = "",
    tags: Iterable[str] = (),
    source: str = "user",
    source_ref: str = "",
    notes: str = "",
    metadata: dict | None = None,
    submitter: User | None = None,
    submitter_key: ApiKey | None = None,
) -> Submission:
    """Queue a proposed prompt for review. A pending submission with the same normalized text is counted again
    (`occurrences` + 1) instead of queued twice."""
    raise NotImplementedError


def submission_accept(*, submission: Submission, reviewer: User | None, reason: str = "") -> Submission:
    """Accept a pending submission into its organization's bank through the pipeline; links the created (or
    already existing) prompt."""
    raise NotImplementedError


def submission_reject(*, submission: Submission, reviewer: User | None, reason: str) -> Submission:
    raise NotImplementedError


# --- releases -----------------------------------------------------------------------------------------------------


def release_create(
    *, organization: Organization | None, bump: str, notes: str = "", actor: User | None, activate: bool = True
) -> BankRelease:
    """Freeze the scope's active prompts (the exact current versions) into a new release numbered by bumping the
    latest one (first release: 1.0.0, 0.1.0 or 0.0.1 by bump); activates it unless told not to."""
    raise NotImplementedError


def release_activate(*, release: BankRelease, actor: User | None) -> BankRelease:
    """Make `release` the active one of its scope (an older one: a rollback)."""
    raise NotImplementedError


@dataclass
class ReleaseDiff:
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)


def release_compare(older: BankRelease, newer: BankRelease) -> ReleaseDiff:
    """Prompts added, removed and changed (another version) from `older` to `newer`."""
    raise NotImplementedError


# --- imports ------------------------------------------------------------------------------------------------------


def import_start(
    *,
    organization: Organization | None,
    channel: str,
    source_name: str,
    fileobj: IO[bytes] | None = None,
    filename: str = "",
    records: list[dict] | None = None,
    format: str = "",
    license: str = "",
    actor: User | None = None,
    options: dict | None = None,
) -> IngestionRun:
    """Store the upload (or the JSON records) and start an ingestion run on the `pipeline` queue. Either `fileobj`
    or `records`; the format comes from `format`, else the file name, else the content."""
    raise NotImplementedError


def ingestion_run_execute(*, run_id: str) -> None:
    """The job: stream the stored file through the pipeline, committing counts per batch (resumable)."""
    raise NotImplementedError


# --- export -------------------------------------------------------------------------------------------------------


def export_lines(
    *, prompts: Iterable[Prompt] | None = None, release: BankRelease | None = None, fmt: str
) -> Iterator[str]:
    """Stream a filtered set of prompts, or a release's exact prompt versions, as JSONL or CSV lines (with header)."""
    raise NotImplementedError


# --- statistics ---------------------------------------------------------------------------------------------------


def stats_record(
    *,
    organization: Organization,
    prompt: Prompt,
    used: int = 0,
    firewall_evaluations: int = 0,
    firewall_detections: int = 0,
    test_runs: int = 0,
    attack_successes: int = 0,
    false_positives: int = 0,
) -> None:
    """Add to a prompt's per-organization statistics (called by the firewall and testing apps)."""
    raise NotImplementedError
