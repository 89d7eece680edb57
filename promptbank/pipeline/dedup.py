"""De-duplication within a bank scope: exact duplicates by normalized hash, near duplicates by MinHash/LSH.

Scope: importing into organization X compares with X's own prompts and the global bank (the bank X sees); importing
into the global bank compares with global prompts only. Organization B's private prompts never make A's import a
duplicate or a near duplicate: A's index never holds them, and the hash lookup drops them before anything else.

The LSH index of a scope is built from the stored `Prompt.minhash` signatures (only id and signature are loaded, in
chunks; a prompt without one, e.g. made by a fixture, has it computed from its text). It is cached per process and
per scope, keyed on the scope's (row count, latest created_at), so a single-record ingest does not rebuild it; a
prompt added or deleted by anyone changes the key and the next ingest rebuilds. While one thread uses a scope's
cached index, another thread ingesting into the same scope builds a private one instead of waiting.

Near duplicates: the index proposes candidates (estimated Jaccard >= `VERIFY_FLOOR`). When the best estimate is
clearly above `settings.PROMPTBANK_NEAR_DUPLICATE_THRESHOLD` (by `SURE_MARGIN`; the estimate is within about 0.02 up
there) the record is a near duplicate of that prompt at once. Otherwise the best `VERIFY_TOP` candidates are verified
exactly (`minhash.similarity` on the normalized texts: character 3-grams, or words for short sentences) and the best
one at or above the threshold wins: near the threshold the estimate's noise (about ±0.035 at 128 bins) would make the
decision a coin toss, and a one-word change in a short sentence is only caught by words.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, Max, Q

from accounts.models import Organization
from promptbank.models import Prompt
from promptbank.pipeline import minhash
from promptbank.pipeline.normalize import normalize_text

VERIFY_FLOOR = 0.5
VERIFY_TOP = 3
SURE_MARGIN = 0.12
CACHE_SCOPES = 8
LOAD_CHUNK = 5000
RECENT_CHARS = 32_000_000


def scope_q(organization: Organization | None) -> Q:
    """The prompts an import into `organization` is compared with."""
    if organization is None:
        return Q(organization__isnull=True)
    return Q(organization=organization) | Q(organization__isnull=True)


def existing_prompts(organization: Organization | None, hashes: Iterable[str]) -> dict[str, uuid.UUID]:
    """`{normalized_hash: prompt id}` of the hashes already in the scope (the organization's own copy first)."""
    hashes = list(set(hashes))
    if not hashes:
        return {}
    found: dict[str, uuid.UUID] = {}
    # Looked up by hash alone, so the database uses the hash index (with the scope in the WHERE clause SQLite scans
    # every global row); rows of other organizations are dropped here and never leave this function.
    scope = {None, organization.pk if organization is not None else None}
    rows = (
        Prompt.objects.filter(normalized_hash__in=hashes)
        .order_by()
        .values_list("normalized_hash", "id", "organization_id")
    )
    for digest, prompt_id, org_id in rows:
        if org_id in scope and (digest not in found or org_id is not None):
            found[digest] = prompt_id
    return found


Fingerprint = tuple[int, datetime | None]


def fingerprint(organization: Organization | None) -> Fingerprint:
    row = Prompt.objects.filter(scope_q(organization)).order_by().aggregate(n=Count("id"), latest=Max("created_at"))
    return row["n"], row["latest"]


def build_index(organization: Organization | None) -> minhash.LSHIndex:
    """The scope's LSH index from the stored signatures (computed from the text where one is missing)."""
    index = minhash.LSHIndex()
    ids: list[uuid.UUID] = []
    sigs: list[np.ndarray] = []
    missing: list[uuid.UUID] = []
    rows = Prompt.objects.filter(scope_q(organization)).order_by("created_at", "id").values_list("id", "minhash")
    for prompt_id, data in rows.iterator(chunk_size=LOAD_CHUNK):
        sig = minhash.from_bytes(data)
        if sig is None:
            missing.append(prompt_id)
            continue
        ids.append(prompt_id)
        sigs.append(sig)
        if len(ids) >= LOAD_CHUNK:
            index.add(ids, np.stack(sigs))
            ids, sigs = [], []
    if ids:
        index.add(ids, np.stack(sigs))
    for start in range(0, len(missing), LOAD_CHUNK):
        chunk = missing[start : start + LOAD_CHUNK]
        texts = dict(Prompt.objects.filter(id__in=chunk).order_by().values_list("id", "text"))
        keys = [pk for pk in chunk if pk in texts]
        index.add(keys, minhash.signatures([normalize_text(texts[pk]).normalized.casefold() for pk in keys]))
    return index


@dataclass
class ScopeIndex:
    """A scope's index and the fingerprint of the rows it reflects; `lock` is held by the ingest using it."""

    organization_id: Any
    index: minhash.LSHIndex
    fingerprint: Fingerprint | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The normalized texts of the prompts this ingest stored last (up to RECENT_CHARS characters), so verifying a
    # candidate from a recent batch needs no database read; emptied when the ingest ends, so an idle process keeps
    # only the index.
    recent: OrderedDict[uuid.UUID, str] = field(default_factory=OrderedDict)
    recent_chars: int = 0

    def stored(self, count: int, latest: datetime | None, texts: dict[uuid.UUID, str] | None = None) -> None:
        """Rows this ingest committed (and added to the index): keep the fingerprint in step, so the next ingest
        reuses the index instead of rebuilding it."""
        for key, text in (texts or {}).items():
            self.recent[key] = text
            self.recent_chars += len(text)
        while self.recent_chars > RECENT_CHARS and self.recent:
            self.recent_chars -= len(self.recent.popitem(last=False)[1])
        if self.fingerprint is None or count == 0:
            return
        n, previous = self.fingerprint
        self.fingerprint = (n + count, max(filter(None, (previous, latest)), default=None))

    def rebuild(self, organization: Organization | None, current: Fingerprint) -> None:
        self.index = build_index(organization)
        self.fingerprint = current
        self.recent.clear()
        self.recent_chars = 0

    def invalidate(self) -> None:
        self.fingerprint = None


_cache: OrderedDict[Any, ScopeIndex] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


@contextmanager
def scope_index(organization: Organization | None) -> Iterator[ScopeIndex]:
    """The scope's index, up to date with the database, for exclusive use during one ingest."""
    key = organization.pk if organization is not None else None
    current = fingerprint(organization)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None:
            entry = ScopeIndex(key, minhash.LSHIndex(), None)
            _cache[key] = entry
            while len(_cache) > CACHE_SCOPES:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        mine = entry.lock.acquire(blocking=False)
    if not mine:  # another thread of this process is ingesting into the same scope
        yield ScopeIndex(key, build_index(organization), current)
        return
    try:
        if entry.fingerprint != current:
            entry.rebuild(organization, current)
        try:
            yield entry
        except BaseException:
            entry.invalidate()  # the index may hold prompts whose batch was rolled back
            raise
    finally:
        entry.recent.clear()
        entry.recent_chars = 0
        entry.lock.release()


@dataclass
class NearDuplicateQuery:
    """One new prompt to place in the index and check: `key` is its future prompt id."""

    key: uuid.UUID
    normalized: str  # case-folded
    exclude: uuid.UUID | None = None  # its parent, for a variant
    similarity: float = 0.0  # best verified similarity (0 when no candidate)
    duplicate_of: uuid.UUID | None = None
    position: int = -1


def find_near_duplicates(scope: ScopeIndex, queries: list[NearDuplicateQuery], threshold: float) -> np.ndarray:
    """Add the queries to the index (in order) and mark each one's best earlier match; returns their signatures."""
    if not queries:
        return np.zeros((0, minhash.NUM_BINS), dtype=np.uint32)
    index = scope.index
    sigs, shingles = minhash.signatures_and_shingles([q.normalized for q in queries])
    batch_start = len(index)
    positions = index.add([q.key for q in queries], sigs)
    for query, position in zip(queries, positions, strict=True):
        query.position = position
    candidates = index.query(sigs, min_estimate=VERIFY_FLOOR, before=positions, limit=VERIFY_TOP + 1)
    by_position = {q.position: (q, hashes) for q, hashes in zip(queries, shingles, strict=True)}
    chosen: list[list[tuple[int, float]]] = []
    outside: set[uuid.UUID] = set()
    for query, found in zip(queries, candidates, strict=True):
        picks = [(p, e) for p, e in found if index.key(p) != query.exclude][:VERIFY_TOP]
        if picks and picks[0][1] >= threshold + SURE_MARGIN:
            # Clearly a near duplicate: the estimate is within about 0.02 here, no need to read texts to be sure.
            query.similarity, query.duplicate_of = picks[0][1], index.key(picks[0][0])
            picks = []
        chosen.append(picks)
        outside.update(index.key(p) for p, _ in picks if p < batch_start)
    texts = {key: scope.recent[key] for key in outside if key in scope.recent}
    texts.update(_normalized_texts(outside - texts.keys()))
    profiles: dict[int, minhash.Profile] = {}  # a popular candidate (a template) is profiled once

    def profile(position: int, text: str) -> minhash.Profile:
        if position not in profiles:
            known = by_position.get(position)  # a text of this batch: its shingles are already hashed
            profiles[position] = minhash.Profile(text, known[1] if known else None)
        return profiles[position]

    for query, picks in zip(queries, chosen, strict=True):
        if not picks:
            continue
        best, best_key = 0.0, None
        for p, estimate in picks:
            if best >= threshold and estimate < best - 0.2:
                break  # candidates come best-estimate first: the rest cannot plausibly beat a clear match
            key = index.key(p)
            other = by_position[p][0].normalized if p >= batch_start else texts.get(key)
            if other is None:
                continue
            value = minhash.profile_similarity(profile(query.position, query.normalized), profile(p, other))
            if value > best:
                best, best_key = value, key
        query.similarity = best
        if best_key is not None and best >= threshold:
            query.duplicate_of = best_key
    return sigs


def _normalized_texts(ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = Prompt.objects.filter(id__in=list(ids)).order_by().values_list("id", "text")
    return {pk: normalize_text(text).normalized.casefold() for pk, text in rows}
