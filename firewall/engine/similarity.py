"""Similarity to known attacks: MinHash signatures of character 5-grams and an LSH index over them.

The design follows the bank's near-duplicate stage (`promptbank.pipeline.minhash`, not imported: its package pulls in
Django), with two differences that suit a detector on the hot path:

- shingles are character 5-grams of the normalized, case-folded text (the bank uses 3-grams): unrelated English
  texts share far fewer 5-grams (the median benign prompt of the bank is at Jaccard 0.06 from its closest attack,
  0.17 at the 95th percentile), while a lightly edited attack (a word in fifteen replaced, dropped or added) stays
  at 0.7 or more in 95% of cases;
- the score of a match is the MinHash estimate of the Jaccard similarity (128 bins: about ±0.04 at 0.7), mapped
  piecewise linearly so that Jaccard `NEAR_COPY` (0.6) is the policies' default block score 0.7 and anything below
  `UNRELATED` (0.25) keeps its value: unrelated text stays well below 0.4.

Signatures: each shingle is hashed (a polynomial over its code points mixed with SplitMix64's finalizer);
one-permutation hashing spreads the hashes over `NUM_BINS` bins by their top bits and keeps the smallest low 32 bits
per bin; an empty bin borrows from the next non-empty one to its right, mixed with the distance. Index: `BANDS` bands
of `ROWS` bins; an entry is a candidate when one band is equal (Jaccard 0.6: found with probability 0.99; 0.3: 0.23),
looked up with `searchsorted` in one sorted array of all band keys, so a query costs O(bands · log n) plus at most
`MAX_BUCKET` candidates per band, whatever the index's size.

An attack that is nearly identical to a benign prompt (`benign=` given to the index: the bank's indirect injections
are e-mails whose benign twin is the same e-mail without the planted instruction) is kept out: similarity cannot
tell the two apart, and the classifier and signatures can.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from evalence.minhash import band_keys, densify, mix64
from firewall.engine.classifier import threat_of
from firewall.engine.normalize import normalize
from firewall.engine.types import Candidate, Finding, Severity, ThreatType

DETECTOR = "similarity"
SHINGLE = 5
NUM_BINS = 128
BANDS = 32
ROWS = NUM_BINS // BANDS
MAX_BUCKET = 64  # candidates taken from one band bucket (templates crowd some buckets)
MAX_CHARS = 8_000  # of a query; the bank's texts are shorter
MAX_CANDIDATES = 4
NEAR_COPY = 0.6  # Jaccard mapped to the block score 0.7
UNRELATED = 0.25  # below this the score is the Jaccard itself
BENIGN_TWIN = NEAR_COPY  # an attack this similar to a benign prompt is not indexed (it would block the benign one)
MIN_REPORT = 0.2  # no finding below this score

_BIN_SHIFT = np.uint64(64 - 7)  # 2**7 == NUM_BINS
_LOW32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)
_MULT = np.uint64(0x9E3779B97F4A7C15)
_PAD = "\x01"
_CHUNK_CHARS = 1 << 20


@dataclass(frozen=True)
class Match:
    id: str
    score: float  # the calibrated score, in [0, 1]
    threat_type: str
    similarity: float = 0.0  # the estimated Jaccard similarity behind the score


def calibrate(jaccard: float) -> float:
    """Estimated Jaccard → score: identity below `UNRELATED`, then linear through (`NEAR_COPY`, 0.7) to (1, 1)."""
    if jaccard <= UNRELATED:
        return max(0.0, jaccard)
    if jaccard <= NEAR_COPY:
        return UNRELATED + (0.7 - UNRELATED) * (jaccard - UNRELATED) / (NEAR_COPY - UNRELATED)
    return min(1.0, 0.7 + 0.3 * (jaccard - NEAR_COPY) / (1.0 - NEAR_COPY))


def _prepare(text: str) -> str:
    """What is shingled: the case-folded text (already normalized), padded to one shingle."""
    text = text[:MAX_CHARS].casefold().replace("\x00", " ")  # NUL separates texts in a batch
    return text if len(text) >= SHINGLE else text + _PAD * (SHINGLE - len(text))


def _signatures(texts: Sequence[str]) -> np.ndarray:
    """MinHash signatures, shape (len(texts), NUM_BINS) uint32, of prepared texts (`_prepare`)."""
    n = len(texts)
    joined = "\x00".join(texts)
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    windows = len(cp) - SHINGLE + 1
    h = cp[:windows].copy()
    for k in range(1, SHINGLE):
        h = h * _MULT + cp[k : k + windows]
    if n > 1:  # drop the windows that cross a separator
        separator = (cp == 0).astype(np.int32)
        crossing = np.convolve(separator, np.ones(SHINGLE, dtype=np.int32))[SHINGLE - 1 : SHINGLE - 1 + windows] > 0
        h = h[~crossing]
    lengths = np.fromiter((len(t) - SHINGLE + 1 for t in texts), dtype=np.int64, count=n)
    doc = np.repeat(np.arange(n, dtype=np.int64), lengths)
    h = mix64(h)
    keys = (h >> _BIN_SHIFT).astype(np.int64) + doc * NUM_BINS
    flat = np.full(n * NUM_BINS, _EMPTY, dtype=np.uint32)
    np.minimum.at(flat, keys, (h & _LOW32).astype(np.uint32))
    sig = flat.reshape(n, NUM_BINS)
    empty = sig == _EMPTY
    if empty.any():
        sig = densify(sig, empty)
    return sig


def signatures(texts: Sequence[str]) -> np.ndarray:
    """Signatures of normalized texts, in chunks so that the temporary arrays stay bounded."""
    prepared = [_prepare(t) for t in texts]
    if not prepared:
        return np.zeros((0, NUM_BINS), dtype=np.uint32)
    out: list[np.ndarray] = []
    start, size = 0, 0
    for i, text in enumerate(prepared):
        if size and size + len(text) > _CHUNK_CHARS:
            out.append(_signatures(prepared[start:i]))
            start, size = i, 0
        size += len(text) + 1
    out.append(_signatures(prepared[start:]))
    return out[0] if len(out) == 1 else np.concatenate(out)


def _severity(score: float) -> Severity:
    if score >= 0.9:
        return Severity.HIGH
    if score >= 0.7:
        return Severity.MEDIUM
    return Severity.LOW


class _Bands:
    """Sorted band keys of a set of signatures and each key's entry position."""

    def __init__(self, sigs: np.ndarray) -> None:
        keys = band_keys(sigs, BANDS).ravel()
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.positions = (order // BANDS).astype(np.int32)

    def candidates(self, query_keys: np.ndarray) -> np.ndarray:
        """Positions sharing at least one band with the query (at most `MAX_BUCKET` per band), unique."""
        left = np.searchsorted(self.keys, query_keys, side="left")
        right = np.minimum(np.searchsorted(self.keys, query_keys, side="right"), left + MAX_BUCKET)
        hits = np.flatnonzero(right > left)
        if len(hits) == 0:
            return np.zeros(0, dtype=np.int32)
        found = np.concatenate([self.positions[left[i] : right[i]] for i in hits])
        return np.unique(found)


class SimilarityIndex:
    """Known attacks, (id, text, threat_type) each, searchable by similarity. Immutable: rebuild to change it.

    `benign` texts are not indexed; they keep out the attacks that are near-copies of a benign text (see the module
    docstring), counted in `excluded`."""

    def __init__(self, entries: Iterable[tuple[str, str, str]], *, benign: Iterable[str] = ()) -> None:
        ids: list[str] = []
        texts: list[str] = []
        types: list[str] = []
        for entry_id, text, threat_type in entries:
            ids.append(str(entry_id))
            texts.append(normalize(text).text)
            kind = str(threat_type or "")
            types.append(kind if kind in ThreatType._value2member_map_ else threat_of(kind).value)
        sigs = signatures(texts)
        self.excluded = 0
        benign_texts = [normalize(t).text for t in benign]
        if benign_texts and len(sigs):
            keep = self._not_benign_twins(sigs, signatures(benign_texts))
            self.excluded = int(len(keep) - keep.sum())
            sigs = sigs[keep]
            ids = [i for i, k in zip(ids, keep, strict=True) if k]
            types = [t for t, k in zip(types, keep, strict=True) if k]
        self._ids = ids
        self._type_names = sorted(set(types))
        self._types = np.array([self._type_names.index(t) for t in types], dtype=np.int16)
        self._sigs = sigs
        self._bands = _Bands(sigs)

    @staticmethod
    def _not_benign_twins(attack_sigs: np.ndarray, benign_sigs: np.ndarray) -> np.ndarray:
        """Which attacks have no benign text at `BENIGN_TWIN` or more among the benign texts sharing a band."""
        bands = _Bands(benign_sigs)
        keys = band_keys(attack_sigs, BANDS)
        left = np.searchsorted(bands.keys, keys.ravel(), side="left").reshape(keys.shape)
        hit = np.take(bands.keys, np.minimum(left, len(bands.keys) - 1)) == keys
        keep = np.ones(len(attack_sigs), dtype=bool)
        for row in np.flatnonzero(hit.any(axis=1)):
            candidates = bands.candidates(keys[row])
            best = (benign_sigs[candidates] == attack_sigs[row]).mean(axis=1).max()
            keep[row] = best < BENIGN_TWIN
        return keep

    def __len__(self) -> int:
        return len(self._ids)

    def _nearest_prepared(self, text: str, k: int) -> list[Match]:
        if not self._ids or k <= 0:
            return []
        sig = _signatures([_prepare(text)])
        candidates = self._bands.candidates(band_keys(sig, BANDS)[0])
        if len(candidates) == 0:
            return []
        estimates = (self._sigs[candidates] == sig[0]).mean(axis=1)
        order = np.argsort(-estimates, kind="stable")[:k]
        return [
            Match(
                id=self._ids[candidates[i]],
                score=calibrate(float(estimates[i])),
                threat_type=self._type_names[self._types[candidates[i]]],
                similarity=round(float(estimates[i]), 4),
            )
            for i in order
        ]

    def nearest(self, text: str, k: int = 5) -> list[Match]:
        """The k most similar known attacks that share a band with the text, best first."""
        return self._nearest_prepared(normalize(text).text, k)

    def scan(self, candidates: list[Candidate]) -> list[Finding]:
        """At most one finding: the best match over the first `MAX_CANDIDATES` candidates (normalized already)."""
        best: tuple[Match, Candidate] | None = None
        for candidate in candidates[:MAX_CANDIDATES]:
            matches = self._nearest_prepared(candidate.text, 1)
            if matches and (best is None or matches[0].score > best[0].score):
                best = (matches[0], candidate)
        if best is None or best[0].score < MIN_REPORT:
            return []
        match, candidate = best
        evidence = f"similar ({match.similarity:.2f}) to known attack {match.id}"
        if candidate.view != "normalized":
            evidence = f"{candidate.view}: {evidence}"
        return [
            Finding(
                detector=DETECTOR,
                score=match.score,
                threat_type=ThreatType(match.threat_type),
                severity=_severity(match.score),
                evidence=[evidence],
                view=candidate.view,
            )
        ]
