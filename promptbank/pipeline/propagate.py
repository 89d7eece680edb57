"""Propagate: tell the learning loop what an ingest added — a `LearningEvent` row and the `prompts_changed` signal.

One event and one signal per ingest call (an import run, a single prompt), not per batch, so subscribers that
retrain (the firewall) are not woken once per 500 rows. Nothing is sent when nothing was stored. The signal goes out
after the surrounding transaction commits, so receivers can read the rows.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from accounts.models import Organization
from promptbank.choices import LearningEventType
from promptbank.models import LearningEvent, Prompt
from promptbank.signals import prompts_changed


def propagate(
    *,
    organization: Organization | None,
    prompt_ids: list[uuid.UUID],
    counts: dict[str, int],
    source_name: str,
    source_type: str,
    source_id: str = "",
    reason: str = "ingested",
) -> LearningEvent | None:
    """Record the ingest as a learning event and announce the new prompts."""
    if not prompt_ids:
        return None
    result: dict[str, Any] = {**counts, "source": source_name, "stored": len(prompt_ids)}
    event = LearningEvent.objects.create(
        organization=organization,
        event_type=LearningEventType.PROMPTS_INGESTED,
        source_type=source_type,
        source_id=source_id,
        action=f"ingested {len(prompt_ids)} prompt{'s' if len(prompt_ids) != 1 else ''} from {source_name}"[:200],
        result=result,
        prompt_id=prompt_ids[0] if len(prompt_ids) == 1 else None,
    )
    ids = list(prompt_ids)
    transaction.on_commit(
        lambda: prompts_changed.send(sender=Prompt, organization=organization, prompt_ids=ids, reason=reason)
    )
    return event
