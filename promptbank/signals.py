"""Signals other apps subscribe to (the dependency arrow points up: promptbank never imports them).

`prompts_changed` is sent after the transaction that changed prompts commits, with keyword arguments:

- `organization`: the bank scope (an `Organization`, or None for the global bank);
- `prompt_ids`: the ids (UUIDs) of the prompts created or changed;
- `reason`: what happened, e.g. "ingested" (the pipeline) — receivers may ignore reasons they do not handle.

The firewall listens to refresh its patterns and schedule retraining; receivers should queue work rather than do it
inline, since an import sends one signal for all the prompts it added.

`release_created` is sent after the transaction that created a bank release commits (`release_create`), with:

- `release`: the new `BankRelease` (its `organization` is None for a global release).

The testing app listens to run the firewall regression over the release's prompts (`testing.regression`) and records
the figures back with `promptbank.services.release_metrics_record`. A receiver runs after the commit, so it must not
raise: it logs and records its failure instead.
"""

from __future__ import annotations

from django.dispatch import Signal

prompts_changed = Signal()
release_created = Signal()
