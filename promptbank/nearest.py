"""Nearest known attacks: the bank prompts and threat patterns most similar to a given text.

What is searched, for an organization: the active attack prompts it can see (the global bank's and its own, never
another organization's) and the firewall's threat patterns it may know of (`firewall.nearest` decides which: those
it was sent itself and those several organizations were sent). A pattern is a hash and counts, never text.

How: every prompt already carries its MinHash signature (`Prompt.minhash`, character 3-grams of the normalized,
case-folded text, `promptbank.pipeline.minhash`), and a threat pattern carries one of the same layout
(`ThreatPattern.signature`, computed with `text_signature` when the firewall first records it). An index per scope
("global", one per organization, "patterns") keeps the signatures and their band keys (32 bands of 4 bins) in one
sorted array; a query looks its 32 band keys up with `searchsorted` (O(bands · log n), at most `MAX_BUCKET`
entries per band, whatever the size), and a text is a candidate when one band is equal (found with probability 0.87
at Jaccard 0.5, 0.99 at 0.6; the dedup stage asks for two bands, a search wants recall). The best `limit` +
`RERANK_EXTRA` prompt candidates by estimated Jaccard are then re-ranked exactly (`minhash.similarity`: the Jaccard
of the 3-gram sets, or of the word sets when higher) on their texts, read back by primary key and checked against
the organization's scope again (a second wall). A pattern's score stays the MinHash estimate: there is no text.

Freshness: an index is rebuilt lazily, by the first search that finds it out of date — at once in this process when
`prompts_changed` fires for its scope (as the firewall's similarity index), and in every process when the scope's
fingerprint (row count, latest `updated_at`; for patterns, count and latest `first_seen`) has changed, checked at
most every `REFRESH_S` seconds. While one thread rebuilds, the others keep searching the previous copy.

Threat patterns live in the firewall app, which imports this one (not the reverse): the firewall registers a
`PatternSource` when it starts (`register_pattern_source`), which hands over signatures and decides which patterns
an organization may see; without one, a search covers the bank alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from django.db.models import Count, Max, Q, QuerySet
from django.dispatch import receiver

from accounts.models import Organization
from evalence.errors import ValidationFailed
from evalence.minhash import band_keys
from promptbank.choices import Label
from promptbank.models import Prompt
from promptbank.pipeline import minhash
from promptbank.pipeline.normalize import normalize_text
from promptbank.signals import prompts_changed

BANDS = 32
MAX_BUCKET = 64  # entries taken from one band bucket (templates crowd some buckets)
RERANK_EXTRA = 5  # prompt candidates re-ranked exactly: the `limit` best estimates and this many more
MIN_SCORE = 0.2  # nothing below this is "near"
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_QUERY_CHARS = 20_000
REFRESH_S = 5.0
LOAD_CHUNK = 5000


@dataclass(frozen=True)
class Nearest:
    """One answer: a prompt (with its text: the organization can see it) or a pattern (hash and counts only)."""

    kind: str  # "prompt" | "pattern"
    id: str
    score: float
    category: str = ""
    text: str = ""
    threat_type: str = ""
    pattern_hash: str = ""
    detection_count: int = 0
    organizations_affected: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "prompt":
            return {"kind": "prompt", "id": self.id, "score": self.score, "category": self.category, "text": self.text}
        return {
            "kind": "pattern",
            "id": self.id,
            "score": self.score,
            "threat_type": self.threat_type,
            "pattern_hash": self.pattern_hash,
            "detection_count": self.detection_count,
            "organizations_affected": self.organizations_affected,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


def prepare(text: str) -> str:
    """What is shingled: the bank's normalized text, case-folded (as `Prompt.minhash` was computed)."""
    return normalize_text(text).normalized.casefold()


def text_signature(text: str) -> bytes:
    """The stored signature of a raw text, in `Prompt.minhash`'s layout (the firewall stores it on a pattern)."""
    return minhash.signature(prepare(text))


# --- the index ----------------------------------------------------------------------------------------------------


class SignatureIndex:
    """Immutable: keys and their signatures, searchable by one shared band. Rebuild to change it."""

    def __init__(self, keys: list[Any], sigs: np.ndarray) -> None:
        self.keys = keys
        self.sigs = sigs if len(sigs) else np.zeros((0, minhash.NUM_BINS), dtype=np.uint32)
        bands = band_keys(self.sigs, BANDS).ravel()
        order = np.argsort(bands, kind="stable")
        self._bands = bands[order]
        self._positions = (order // BANDS).astype(np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, sig: np.ndarray, top: int, floor: float = MIN_SCORE) -> list[tuple[Any, float]]:
        """(key, estimated Jaccard) of the entries sharing a band with `sig`, best first, at most `top`."""
        if not self.keys:
            return []
        query = band_keys(sig[None, :], BANDS)[0]
        lo = np.searchsorted(self._bands, query, side="left")
        hi = np.minimum(np.searchsorted(self._bands, query, side="right"), lo + MAX_BUCKET)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return []
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        found = np.unique(self._positions[offsets])
        estimates = np.count_nonzero(self.sigs[found] == sig, axis=1) / minhash.NUM_BINS
        keep = estimates >= floor
        found, estimates = found[keep], estimates[keep]
        order = np.argsort(-estimates, kind="stable")[:top]
        return [(self.keys[found[i]], float(estimates[i])) for i in order]


def _index_of(rows: Iterable[tuple[Any, bytes | memoryview | None]], text_of: Callable[[list[Any]], dict]) -> Any:
    """An index from (key, stored signature) rows; rows without a usable signature get one from their text."""
    keys: list[Any] = []
    sigs: list[np.ndarray] = []
    missing: list[Any] = []
    for key, data in rows:
        sig = minhash.from_bytes(data)
        if sig is None:
            missing.append(key)
        else:
            keys.append(key)
            sigs.append(sig)
    for start in range(0, len(missing), LOAD_CHUNK):
        texts = text_of(missing[start : start + LOAD_CHUNK])
        chunk = [key for key in missing[start : start + LOAD_CHUNK] if key in texts]
        if chunk:
            keys.extend(chunk)
            sigs.extend(minhash.signatures([prepare(texts[key]) for key in chunk]))
    return SignatureIndex(keys, np.stack(sigs) if sigs else np.zeros((0, minhash.NUM_BINS), dtype=np.uint32))


def _attacks(organization: Organization | None) -> QuerySet[Prompt]:
    """One scope's searchable prompts: its own active attacks (the global bank's when `organization` is None)."""
    scope = Q(organization__isnull=True) if organization is None else Q(organization=organization)
    return Prompt.objects.filter(scope, is_active=True, label=Label.ATTACK)


def _prompt_texts(ids: list[Any]) -> dict[Any, str]:
    return dict(Prompt.objects.filter(pk__in=ids).order_by().values_list("pk", "text"))


def _build_prompts(organization: Organization | None) -> SignatureIndex:
    rows = _attacks(organization).order_by().values_list("pk", "minhash").iterator(chunk_size=LOAD_CHUNK)
    return _index_of(rows, _prompt_texts)


class PatternSource(Protocol):
    """Where threat patterns come from (the firewall registers one): their stored signatures, a cheap fingerprint
    that changes when they do, and the patterns of a candidate list one organization may see, as `Nearest`s."""

    def signatures(self) -> Iterable[tuple[Any, bytes | memoryview | None]]: ...

    def fingerprint(self) -> tuple[Any, ...]: ...

    def visible(self, organization: Organization, estimates: dict[Any, float]) -> list[Nearest]: ...


_pattern_sources: list[PatternSource] = []


def register_pattern_source(source: PatternSource) -> None:
    """Called by the app that owns the patterns, once, when it starts."""
    if not any(type(known) is type(source) for known in _pattern_sources):
        _pattern_sources.append(source)


def _build_patterns() -> SignatureIndex:
    rows = (row for source in _pattern_sources for row in source.signatures())
    return _index_of(rows, lambda ids: {})  # no text to fall back on


def _pattern_fingerprint() -> tuple[Any, ...]:
    return tuple(source.fingerprint() for source in _pattern_sources)


def _prompt_fingerprint(organization: Organization | None) -> tuple[Any, ...]:
    row = _attacks(organization).order_by().aggregate(n=Count("pk"), latest=Max("updated_at"))
    return row["n"], row["latest"]


@dataclass(frozen=True)
class _Copy:
    index: SignatureIndex
    fingerprint: tuple[Any, ...]
    generation: int
    checked_at: float


class _Indexes:
    """Per-process copies by scope key, rebuilt by one caller when stale while the others keep the old copy."""

    def __init__(self) -> None:
        self.builds = 0
        self._copies: dict[str, _Copy] = {}
        self._generations: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str, build: Callable[[], SignatureIndex], fingerprint: Callable[[], tuple]) -> SignatureIndex:
        copy = self._copies.get(key)
        generation = self._generations.get(key, 0)
        if copy is not None and copy.generation == generation and time.monotonic() - copy.checked_at < REFRESH_S:
            return copy.index
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=copy is None):
            return copy.index  # type: ignore[union-attr]  # another caller is checking or rebuilding
        try:
            generation = self._generations.get(key, 0)
            current = fingerprint()
            copy = self._copies.get(key)
            if copy is not None and copy.generation == generation and copy.fingerprint == current:
                self._copies[key] = _Copy(copy.index, current, generation, time.monotonic())
                return copy.index
            index = build()
            self.builds += 1
            self._copies[key] = _Copy(index, current, generation, time.monotonic())
            return index
        finally:
            lock.release()

    def mark_stale(self, key: str) -> None:
        with self._guard:
            self._generations[key] = self._generations.get(key, 0) + 1

    def clear(self) -> None:
        with self._guard:
            self._copies.clear()
            self._generations.clear()


_indexes = _Indexes()


def _scope_key(organization: Organization | None) -> str:
    return "global" if organization is None else f"org:{organization.pk}"


def prompt_index(organization: Organization | None) -> SignatureIndex:
    """One scope's prompt index (the global bank's for None), rebuilt when stale."""
    return _indexes.get(
        _scope_key(organization), lambda: _build_prompts(organization), lambda: _prompt_fingerprint(organization)
    )


def pattern_index() -> SignatureIndex:
    return _indexes.get("patterns", _build_patterns, _pattern_fingerprint)


def invalidate(organization: Organization | None = None, *, patterns: bool = False) -> None:
    """This process's index of the scope (or of the patterns) is rebuilt by the next search."""
    _indexes.mark_stale("patterns" if patterns else _scope_key(organization))


def reset() -> None:
    """Forget every copy (tests)."""
    _indexes.clear()


@receiver(prompts_changed, dispatch_uid="promptbank.nearest.prompts_changed")
def _on_prompts_changed(sender: Any, organization: Organization | None = None, **kwargs: Any) -> None:
    invalidate(organization)


# --- the search ---------------------------------------------------------------------------------------------------


def check_query(text: Any, limit: Any) -> tuple[str, int]:
    """The text and limit of a search, or ValidationFailed naming the bad field."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("Give a text to compare with the bank.", fields={"text": ["A non-empty text."]})
    if len(text) > MAX_QUERY_CHARS:
        message = f"At most {MAX_QUERY_CHARS:,} characters."
        raise ValidationFailed(f"The text is too long. {message}", fields={"text": [message]})
    if "\x00" in text:
        raise ValidationFailed("The text holds a NUL character.", fields={"text": ["NUL characters are refused."]})
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        message = f"A whole number from 1 to {MAX_LIMIT}."
        raise ValidationFailed(f"limit: {message}", fields={"limit": [message]})
    return text, limit


def nearest_attacks(*, organization: Organization, text: str, limit: int = DEFAULT_LIMIT) -> list[Nearest]:
    """The `limit` bank prompts and threat patterns nearest to `text` that the organization may see, best first."""
    text, limit = check_query(text, limit)
    prepared = prepare(text)
    if not prepared:
        return []
    sig = minhash.signatures([prepared])[0]
    top = limit + RERANK_EXTRA
    candidates = prompt_index(None).candidates(sig, top) + prompt_index(organization).candidates(sig, top)
    candidates.sort(key=lambda pair: -pair[1])
    results = _prompts(organization, prepared, [key for key, _ in candidates[:top]], limit)
    results += _patterns(organization, pattern_index().candidates(sig, limit * 2 + 10), limit)
    results.sort(key=lambda match: (-match.score, match.kind != "prompt", match.id))
    return results[:limit]


def _prompts(organization: Organization, prepared: str, ids: list[Any], limit: int) -> list[Nearest]:
    if not ids:
        return []
    # Looked up by primary key alone (with the scope in the WHERE clause SQLite scans every global row), and checked
    # here against the organization's scope: a second wall behind the per-scope indexes. Another organization's row
    # never leaves this function.
    scope = {None, organization.pk}
    rows = [
        (pk, raw, category)
        for pk, raw, category, org_id, active, label in Prompt.objects.filter(pk__in=ids)
        .order_by()
        .values_list("pk", "text", "category", "organization_id", "is_active", "label")
        if org_id in scope and active and label == Label.ATTACK
    ]
    if not rows:
        return []
    texts = [prepare(raw) for _, raw, _ in rows]
    _, shingles = minhash.signatures_and_shingles([prepared, *texts])  # every text hashed in one vectorized pass
    query = minhash.Profile(prepared, shingles[0])
    found = []
    for (pk, raw, category), text, hashes in zip(rows, texts, shingles[1:], strict=True):
        score = round(minhash.profile_similarity(query, minhash.Profile(text, hashes)), 4)
        if score >= MIN_SCORE:
            found.append(Nearest(kind="prompt", id=str(pk), score=score, category=category, text=raw))
    found.sort(key=lambda match: -match.score)
    return found[:limit]


def _patterns(organization: Organization, candidates: list[tuple[Any, float]], limit: int) -> list[Nearest]:
    if not candidates:
        return []
    estimates = dict(candidates)
    found = [match for source in _pattern_sources for match in source.visible(organization, estimates)]
    found.sort(key=lambda match: -match.score)
    return found[:limit]


__all__ = [
    "Nearest",
    "PatternSource",
    "SignatureIndex",
    "invalidate",
    "nearest_attacks",
    "pattern_index",
    "prompt_index",
    "register_pattern_source",
    "reset",
    "text_signature",
]
