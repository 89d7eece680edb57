"""Store and version: a batch of new prompts and their version-1 rows, written together.

Call inside the batch's transaction. Rows are inserted with one `executemany` per table: the values are prepared by
each field's own `get_db_prep_save` where the database needs a conversion (UUIDs, JSON, dates, binary) and passed as
they are otherwise (strings, numbers), which skips the per-row SQL compilation of `bulk_create` — most of the cost
of writing 100,000 prompts. There are no signals to miss: `bulk_create` sends none either.

Uniqueness per scope is the database's job (`prompt_unique_text_per_org`, `prompt_unique_text_global`): the dedup
stage has already removed the duplicates it could see, so a conflict here means another process stored the same text
a moment ago. Then the batch falls back to one row at a time through the ORM, each in its own savepoint, and a row
that conflicts becomes a duplicate of the row that won, so the counts stay exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from accounts.models import Organization
from promptbank.models import Prompt, PromptVersion
from promptbank.pipeline.dedup import existing_prompts


def _converter(field: models.Field) -> Callable[[Any], Any] | None:
    """How a value of this field goes to the driver: None for "as it is"; fast paths for the types every row has
    (UUIDs, the batch's one timestamp), the field's own `get_db_prep_save` for the rest (JSON, binary)."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.UUIDField):
        if connection.features.has_native_uuid_field:
            return None
        return lambda value: value.hex if value is not None else None
    if isinstance(field, models.ForeignKey):
        return None  # an integer key
    if isinstance(field, models.DateTimeField):
        memo: dict[Any, Any] = {}

        def datetime_value(value: Any) -> Any:
            if value not in memo:
                memo[value] = field.get_db_prep_save(value, connection)
            return memo[value]

        return datetime_value
    if isinstance(field, models.JSONField | models.BinaryField):
        return lambda value: field.get_db_prep_save(value, connection)
    return None


def insert_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """INSERT rows (dicts keyed by field `attname`, every concrete field present) in one `executemany`."""
    if not rows:
        return
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    converters = [(f.attname, _converter(f)) for f in fields]
    params = [[row[name] if convert is None else convert(row[name]) for name, convert in converters] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def version_row(prompt: dict[str, Any], *, changed_by_id: Any, note: str) -> dict[str, Any]:
    """The version-1 `PromptVersion` of a prompt row."""
    return {
        "id": uuid.uuid4(),
        "organization_id": prompt["organization_id"],
        "created_at": prompt["created_at"],
        "prompt_id": prompt["id"],
        "version": prompt["version"],
        "text": prompt["text"],
        "fields": {name: prompt[name] for name in Prompt.VERSIONED_FIELDS if name != "text"},
        "changed_by_id": changed_by_id,
        "change_note": note[:500],
    }


def save_batch(
    rows: list[dict[str, Any]], *, organization: Organization | None, changed_by_id: Any, note: str
) -> dict[uuid.UUID, uuid.UUID]:
    """Insert the prompt rows and their first versions. Returns `{id of a prompt not stored: id of the prompt that
    already holds its text}` for the rows that lost a race (empty in the usual case)."""
    if not rows:
        return {}
    lost: dict[uuid.UUID, uuid.UUID] = {}
    try:
        with transaction.atomic():
            insert_rows(Prompt, rows)
        stored = rows
    except IntegrityError:
        stored, lost = _save_one_by_one(rows, organization)
    insert_rows(PromptVersion, [version_row(row, changed_by_id=changed_by_id, note=note) for row in stored])
    return lost


def _save_one_by_one(
    rows: list[dict[str, Any]], organization: Organization | None
) -> tuple[list[dict[str, Any]], dict[uuid.UUID, uuid.UUID]]:
    stored: list[dict[str, Any]] = []
    lost: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        # A near duplicate of a row that lost its race points at the row that won instead.
        if row["near_duplicate_of_id"] in lost:
            row["near_duplicate_of_id"] = lost[row["near_duplicate_of_id"]]
        try:
            with transaction.atomic():
                Prompt(**row).save(force_insert=True)
        except IntegrityError:
            winner = existing_prompts(organization, [row["normalized_hash"]]).get(row["normalized_hash"])
            if winner is None:
                raise  # not a uniqueness conflict: let the batch fail
            lost[row["id"]] = winner
            continue
        stored.append(row)
    return stored, lost
