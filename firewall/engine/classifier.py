"""The statistical detector: a linear model over hashed character n-grams, trained from the prompt bank.

Features: the lower-cased text (a longer one in chunks of `MAX_CHARS` characters, see `chunks`: a text scores as its
highest chunk) is cut into character 3-, 4- and 5-grams (across word boundaries, so short word pairs count too); each
n-gram is hashed (a polynomial over its code points, mixed with SplitMix64's finalizer) into one of 2**`BITS` buckets.
A text's vector is binary (a bucket is present or not), weighted by the bucket's inverse document frequency in the
training data and scaled to unit length; buckets that no training text had are left out, as a vocabulary-based tf-idf
leaves out unknown words. Hashing is vectorized with numpy, so featurizing 1 KB costs about a tenth of a millisecond
and no vocabulary is kept.

Two logistic regressions (scikit-learn) read these vectors: attack vs benign, and, among attacks, which threat type.
Scoring does not call scikit-learn: the weights are kept as dense arrays (the bucket's idf times its coefficient), so
an attack score is two gathers and a sum; the same arrays give the evidence (the n-grams that contributed most).

Calibration: `train` picks an operating threshold t on a held-out split (the lowest threshold whose false-positive
rate on held-out benign prompts is at most `TARGET_FPR`, placed halfway to the next excluded benign score so that
unseen prompts get a margin), and the reported score maps the raw probability p monotonically so that p = t is
`BLOCK_SCORE` (0.7, the policies' default block threshold): linear on [0, t] and on [t, 1].

The intent head (format 2): a third logistic regression, harmful request (the bank's `harmful` rows: AdvBench,
HarmBench) against benign, over the same features of *windows* of `WINDOW` characters (every `WINDOW_STRIDE`). A
jailbreak that wraps a harmful behaviour in a story or a role-play dilutes it in a whole-text vector; the best window
still reads as the request. The engine's probability is sigmoid(max(attack logit, intent logit - offset)): the offset
lines the intent head's threshold up with the attack head's (each given half the false-positive budget).

Calibration on sources not trained on: with `groups` (each row's source), `train` holds out whole sources
(`GROUP_FOLDS` folds), so the threshold keeps the false-positive rate at `TARGET_FPR` on benign prompts of a kind the
model has not seen, which a random split (the fallback without groups) overstates badly.

The artifact (`to_bytes`) is a zlib-compressed header (JSON) and raw little-endian float32 arrays: no pickle, so
loading one never runs code. Artifacts of format 1 (no intent head) still load.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalence.minhash import mix64
from firewall.engine.normalize import normalize
from firewall.engine.types import Candidate, Finding, Severity, Span, ThreatType

DETECTOR = "classifier"
BITS = 18
NGRAMS = (3, 4, 5)
MAX_CHARS = 4_000  # characters scored at once: a longer text is read in chunks of this size (see `chunks`)
CHUNK_STRIDE = 3_500  # consecutive chunks overlap by 500 characters, so a phrase on a chunk boundary is read whole
MAX_CHUNKS = 4  # per candidate: 14,000 characters, the first three chunks and the last beyond that
MAX_CANDIDATES = 4  # the normalized text and the first decoded payloads
MIN_SCORE = 0.05  # below this no finding is reported
BLOCK_SCORE = 0.7  # the score of a probability at the operating threshold
TARGET_FPR = 0.01
MAX_EVIDENCE = 5
FORMAT = "evalence-classifier/2"
FORMATS = ("evalence-classifier/1", FORMAT)  # 1: no intent head
WINDOW = 100  # characters of an intent window: about the length of the bank's harmful requests
WINDOW_STRIDE = 50
INTENT_CATEGORIES = frozenset({"harmful", "harmful_request"})
INTENT_C = 10.0
GROUP_FOLDS = 5
_MAGIC = b"EVCLF1\n"

_SIZE = 1 << BITS
_SHIFT = np.uint64(64 - BITS)
_MULT = np.uint64(0x9E3779B97F4A7C15)
_WORD_CHAR_RE = re.compile(r"\w")
_WORD_RE = re.compile(r"\w+")
# Word n-grams share the bucket space with the character n-grams; the salts keep "ab" the word from "ab" the bigram.
_UNIGRAM_SALT = np.uint64(0x243F6A8885A308D3)
_BIGRAM_SALT = np.uint64(0x13198A2E03707344)
# Word uni- and bigrams as features too: no gain on the bank's held-out split (3 splits), so off; artifacts say.
WORD_NGRAMS = False

# Bank categories (the bank's own vocabulary and the shared datasets' names) → the threat type the firewall reports.
CATEGORY_THREAT = {
    "prompt_injection": ThreatType.PROMPT_INJECTION,
    "injection": ThreatType.PROMPT_INJECTION,
    "indirect_injection": ThreatType.PROMPT_INJECTION,
    "encoding_obfuscation": ThreatType.PROMPT_INJECTION,
    "jailbreak": ThreatType.JAILBREAK,
    "harmful_request": ThreatType.JAILBREAK,
    "harmful": ThreatType.JAILBREAK,
    "data_extraction": ThreatType.DATA_EXTRACTION,
    "system_prompt_leak": ThreatType.SYSTEM_PROMPT_LEAK,
}


def threat_of(category: str) -> ThreatType:
    """The threat type an attack of a bank category counts as (prompt injection when the category is unknown)."""
    return CATEGORY_THREAT.get(category, ThreatType.PROMPT_INJECTION)


def _buckets(text: str) -> tuple[str, np.ndarray]:
    """(the lower-cased text that was hashed, the bucket of every n-gram at every position), 3-grams first.

    The n-gram of length n at position i sits at offset `sum(len(text) - m + 1 for m < n) + i`."""
    lowered = text[:MAX_CHARS].lower()
    cp = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    length = len(cp)
    if length < NGRAMS[0]:
        return lowered, np.zeros(0, dtype=np.int64)
    parts = []
    h = cp[: length - 2] * _MULT + cp[1 : length - 1]
    h = h * _MULT + cp[2:]
    parts.append(h)
    for n in NGRAMS[1:]:
        if length < n:
            break
        h = h[: length - n + 1] * _MULT + cp[n - 1 :]
        parts.append(h)
    hashes = mix64(np.concatenate(parts))
    return lowered, (hashes >> _SHIFT).astype(np.int64)


def chunks(text: str) -> list[tuple[int, str]]:
    """(offset, chunk) pieces of `text` that the classifier scores one by one, the text's score being the highest.

    Scoring only a text's first `MAX_CHARS` characters would let 4 KB of harmless padding hide an attack behind it;
    reading it all in chunks keeps the cost linear in its length and each chunk's vector as undiluted as a short
    text's. Beyond `MAX_CHUNKS` chunks the middle of a very long text (a raised input limit, a large decoded payload) is
    skipped: the first chunks and the last one are read.
    """
    if len(text) <= MAX_CHARS:
        return [(0, text)]
    starts = list(range(0, len(text) - MAX_CHARS + CHUNK_STRIDE, CHUNK_STRIDE))
    if len(starts) > MAX_CHUNKS:
        starts = [*starts[: MAX_CHUNKS - 1], len(text) - MAX_CHARS]
    return [(start, text[start : start + MAX_CHARS]) for start in starts]


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique values (np.unique is several times slower on small arrays)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _word_buckets(lowered: str) -> np.ndarray:
    """The buckets of the word unigrams and bigrams of a lower-cased text. Words ("\\w+" runs) are hashed with CRC-32
    (stable across processes, unlike `hash`), then combined and mixed like the character n-grams."""
    words = _WORD_RE.findall(lowered)
    if not words:
        return np.zeros(0, dtype=np.int64)
    h = np.fromiter((zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in words), dtype=np.uint64, count=len(words))
    hashes = np.concatenate((h ^ _UNIGRAM_SALT, (h[:-1] * _MULT + h[1:]) ^ _BIGRAM_SALT))
    return (mix64(hashes) >> _SHIFT).astype(np.int64)


def _all_buckets(lowered: str, raw: np.ndarray, words: bool) -> np.ndarray:
    """The distinct buckets of a text from its character n-gram buckets (and its words when the model reads them)."""
    return _unique(np.concatenate((raw, _word_buckets(lowered))) if words else raw)


def features(text: str, words: bool = WORD_NGRAMS) -> np.ndarray:
    """The sorted distinct buckets of a text: its binary feature vector, as indices."""
    lowered, raw = _buckets(text)
    return _all_buckets(lowered, raw, words)


def _windows(raw: np.ndarray, length: int, since: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-gram buckets of every window of `WINDOW` characters of a text (from `_buckets`; `length` characters):
    (buckets, first, starts) where row i of `buckets` is window i's buckets sorted, `first` marks each bucket's first
    occurrence in its row (binary features), and `starts` the windows' offsets. A text no longer than `WINDOW` is one
    window. Windows start every `WINDOW_STRIDE` characters, the last one flush with the end, so all are full; with
    `since`, only the windows that end past it (the rest was read when it was new: see `Candidate.since`)."""
    if len(raw) == 0:
        return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=bool), np.zeros(0, dtype=np.int64)
    if length <= WINDOW:
        rows = np.sort(raw)[None, :]
        starts = np.zeros(1, dtype=np.int64)
    else:
        starts = np.arange(0, length - WINDOW + 1, WINDOW_STRIDE, dtype=np.int64)
        if starts[-1] != length - WINDOW:
            starts = np.append(starts, length - WINDOW)
        if since > 0:
            starts = starts[starts + WINDOW > min(since, length - 1)]  # the last window always stays
        columns = []
        base = 0
        for n in NGRAMS:
            columns.append(base + starts[:, None] + np.arange(WINDOW - n + 1)[None, :])
            base += length - n + 1
        rows = np.sort(raw[np.concatenate(columns, axis=1)], axis=1)
    first = np.ones(rows.shape, dtype=bool)
    first[:, 1:] = rows[:, 1:] != rows[:, :-1]
    return rows, first, starts


@dataclass(slots=True)
class IntentHead:
    """Harmful-request weights over window features: `weights[j]` is bucket j's idf times its coefficient,
    `idf_sq[j]` its idf squared (0 for buckets no training window had), `offset` what is taken off its logit so that
    its operating threshold meets the attack head's."""

    weights: np.ndarray
    idf_sq: np.ndarray
    intercept: float
    offset: float

    def logits(self, raw: np.ndarray, length: int, since: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the logit of every window, their norms, their starts) of a text's n-gram buckets (windows ending past
        `since` only)."""
        rows, first, starts = _windows(raw, length, since)
        if rows.size == 0:
            return np.full(1, self.intercept), np.ones(1), np.zeros(1, dtype=np.int64)
        sums = np.where(first, self.weights[rows], 0.0).sum(axis=1)
        norms = np.sqrt(np.where(first, self.idf_sq[rows], 0.0).sum(axis=1))
        norms[norms == 0] = 1.0
        return self.intercept + sums / norms, norms, starts


def _locate(lowered: str, offset: int) -> tuple[int, int]:
    """Where the n-gram at `offset` of the bucket array (see `_buckets`) sits in `lowered` (start, end)."""
    length = len(lowered)
    for n in NGRAMS:
        count = length - n + 1
        if offset < count:
            return offset, offset + n
        offset -= count
    raise ValueError("offset past the text")  # pragma: no cover - offsets come from this text's buckets


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """The span grown to whole words (an n-gram "gnore" reads as "ignore")."""
    while start > 0 and _WORD_CHAR_RE.match(text[start - 1]):
        start -= 1
    while end < len(text) and _WORD_CHAR_RE.match(text[end]):
        end += 1
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _severity(score: float) -> Severity:
    if score >= 0.9:
        return Severity.CRITICAL
    if score >= BLOCK_SCORE:
        return Severity.HIGH
    if score >= 0.4:
        return Severity.MEDIUM
    return Severity.LOW


class Classifier:
    """A trained model: per-bucket weights, the operating threshold and the threat types it tells apart.

    `weights[j]` is bucket j's idf times its attack coefficient, `idf_sq[j]` its idf squared (for the vector's length),
    `type_weights[k, j]` bucket j's idf times its coefficient for threat type `types[k]`."""

    def __init__(
        self,
        *,
        weights: np.ndarray,
        idf_sq: np.ndarray,
        intercept: float,
        threshold: float,
        types: Sequence[str],
        type_weights: np.ndarray,
        type_intercepts: Sequence[float],
        info: dict[str, Any] | None = None,
        version: str = "",
        words: bool = False,
        intent: IntentHead | None = None,
    ) -> None:
        if weights.shape != (_SIZE,) or idf_sq.shape != (_SIZE,):
            raise ValueError(f"weights must have {_SIZE} buckets")
        if not types or type_weights.shape != (len(types), _SIZE) or len(type_intercepts) != len(types):
            raise ValueError("one row of type weights and one intercept per threat type")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.weights = weights.astype(np.float32, copy=False)
        self.idf_sq = idf_sq.astype(np.float32, copy=False)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.types = [ThreatType(t) for t in types]
        self.type_weights = type_weights.astype(np.float32, copy=False)
        self.type_intercepts = np.asarray(type_intercepts, dtype=np.float32)
        self.info = dict(info or {})
        self.version = version
        self.words = bool(words)  # whether word uni/bigrams are features (artifacts from before them are not)
        if intent is not None:
            if intent.weights.shape != (_SIZE,) or intent.idf_sq.shape != (_SIZE,):
                raise ValueError(f"intent weights must have {_SIZE} buckets")
            intent.weights = intent.weights.astype(np.float32, copy=False)
            intent.idf_sq = intent.idf_sq.astype(np.float32, copy=False)
        self.intent = intent

    # --- serialization --------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The artifact: a JSON header and raw float32 arrays, zlib-compressed. Loading it runs no code."""
        header = {
            "format": FORMAT,
            "bits": BITS,
            "ngrams": list(NGRAMS),
            "max_chars": MAX_CHARS,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "types": [t.value for t in self.types],
            "type_intercepts": [float(v) for v in self.type_intercepts],
            "info": self.info,
            "words": self.words,
            "intent": None
            if self.intent is None
            else {"intercept": self.intent.intercept, "offset": self.intent.offset, "window": WINDOW},
        }
        head = json.dumps(header, sort_keys=True).encode()
        arrays = [self.weights, self.idf_sq, self.type_weights]
        if self.intent is not None:
            arrays += [self.intent.weights, self.intent.idf_sq]
        body = b"".join(a.astype("<f4", copy=False).tobytes() for a in arrays)
        return _MAGIC + zlib.compress(struct.pack("<I", len(head)) + head + body, 6)

    @classmethod
    def from_bytes(cls, data: bytes, version: str = "") -> Classifier:
        """Load an artifact made by `to_bytes`; ValueError when it is not one (or of another feature layout)."""
        if not data.startswith(_MAGIC):
            raise ValueError("not a classifier artifact")
        try:
            raw = zlib.decompress(data[len(_MAGIC) :])
            (head_len,) = struct.unpack_from("<I", raw)
            header = json.loads(raw[4 : 4 + head_len])
        except (zlib.error, struct.error, ValueError) as exc:
            raise ValueError(f"corrupt classifier artifact: {exc}") from None
        if header.get("format") not in FORMATS or header.get("bits") != BITS or header.get("ngrams") != list(NGRAMS):
            raise ValueError(f"unsupported classifier artifact {header.get('format')!r}")
        intent_head = header.get("intent")
        if intent_head is not None and intent_head.get("window") != WINDOW:
            raise ValueError(f"unsupported classifier artifact: intent window {intent_head.get('window')!r}")
        types = header["types"]
        floats = np.frombuffer(raw, dtype="<f4", offset=4 + head_len)
        arrays = 2 + len(types) + (2 if intent_head is not None else 0)
        if len(floats) != arrays * _SIZE:
            raise ValueError("corrupt classifier artifact: wrong array size")
        floats = floats.astype(np.float32)  # a writable copy, native order
        intent = None
        if intent_head is not None:
            end = (2 + len(types)) * _SIZE
            intent = IntentHead(
                weights=floats[end : end + _SIZE],
                idf_sq=floats[end + _SIZE :],
                intercept=float(intent_head["intercept"]),
                offset=float(intent_head["offset"]),
            )
        return cls(
            weights=floats[:_SIZE],
            idf_sq=floats[_SIZE : 2 * _SIZE],
            intercept=header["intercept"],
            threshold=header["threshold"],
            types=types,
            type_weights=floats[2 * _SIZE : (2 + len(types)) * _SIZE].reshape(len(types), _SIZE),
            type_intercepts=header["type_intercepts"],
            info=header.get("info", {}),
            version=version,
            words=bool(header.get("words", False)),
            intent=intent,
        )

    # --- scoring --------------------------------------------------------------------------------------------------

    def _logit(self, buckets: np.ndarray) -> tuple[float, float]:
        """(raw logit, the vector's length) of a text's distinct buckets."""
        if len(buckets) == 0:
            return self.intercept, 1.0
        norm = math.sqrt(float(self.idf_sq[buckets].sum())) or 1.0
        return self.intercept + float(self.weights[buckets].sum()) / norm, norm

    def _combined(
        self, lowered: str, raw: np.ndarray, buckets: np.ndarray, since: int = 0
    ) -> tuple[float, float, int | None]:
        """(the logit the probability is the sigmoid of, the attack vector's norm, the start of the intent window
        that decided it, or None when the attack head did). The attack head reads the whole text; the intent head
        the windows ending past `since`."""
        logit, norm = self._logit(buckets)
        if self.intent is None:
            return logit, norm, None
        window_logits, _, starts = self.intent.logits(raw, len(lowered), since)
        best = int(np.argmax(window_logits))
        intent = float(window_logits[best]) - self.intent.offset
        if intent > logit:
            return intent, norm, int(starts[best])
        return logit, norm, None

    def probability(self, text: str) -> float:
        """The model's raw attack probability (uncalibrated: see `calibrate`): the attack head's, or the intent
        head's best window (shifted by its offset) when that is higher; for a long text, its highest chunk's."""
        best = -math.inf
        for _, chunk in chunks(text):
            lowered, raw = _buckets(chunk)
            best = max(best, self._combined(lowered, raw, _all_buckets(lowered, raw, self.words))[0])
        return _sigmoid(best)

    def calibrate(self, p: float) -> float:
        """Map a raw probability to the reported score: monotonic, the operating threshold to `BLOCK_SCORE`."""
        return _calibrate(p, self.threshold)

    def score(self, texts: list[str]) -> list[float]:
        """Calibrated attack scores in [0, 1] of texts as the engine sees them (normalized; long ones in chunks)."""
        return [self.calibrate(self.probability(text)) for text in texts]

    def threat_type(self, text: str) -> ThreatType:
        """The most likely threat type of a text, were it an attack."""
        return self._threat_type(features(text, self.words))

    def _threat_type(self, buckets: np.ndarray) -> ThreatType:
        if len(self.types) == 1 or len(buckets) == 0:
            return self.types[0]
        # One gather per type: a row of (types, buckets) is contiguous, a column gather across rows is not.
        rows = zip(self.type_weights, self.type_intercepts, strict=True)
        scores = [float(row[buckets].sum()) + float(b) for row, b in rows]
        return self.types[scores.index(max(scores))]

    def explain(self, text: str, limit: int = MAX_EVIDENCE) -> list[tuple[int, int, float]]:
        """The words of `text.lower()` (start, end, weight) that pushed the score up most, strongest first."""
        lowered, raw = _buckets(text)
        return self._explain(lowered, raw, self._logit(_all_buckets(lowered, raw, self.words))[1], limit)

    def _explain(
        self, lowered: str, raw: np.ndarray, norm: float, limit: int = MAX_EVIDENCE, weights: np.ndarray | None = None
    ) -> list[tuple[int, int, float]]:
        if len(raw) == 0:
            return []
        # Per position rather than per distinct bucket: no sort needed to find where a bucket occurs.
        contributions = (self.weights if weights is None else weights)[raw]
        top = min(len(raw), limit * 12)  # one word's overlapping n-grams (and repeats) widen to the same span
        best = np.argpartition(-contributions, top - 1)[:top]
        best = best[np.argsort(-contributions[best], kind="stable")]
        spans: list[tuple[int, int, float]] = []
        seen: set[int] = set()
        for offset in best:
            weight = float(contributions[offset]) / norm
            if weight <= 0 or len(spans) >= limit:
                break
            bucket = int(raw[offset])
            if bucket in seen:
                continue
            seen.add(bucket)
            start, end = _widen(lowered, *_locate(lowered, int(offset)))
            if end > start and not any(start < e and s < end for s, e, _ in spans):
                spans.append((start, end, weight))
        return spans

    def scan(self, candidates: list[Candidate]) -> list[Finding]:
        """At most one finding: the highest-scoring chunk of the first `MAX_CANDIDATES` candidates, with its threat
        type, a severity from the score, and the words that weighed most as evidence. In a context scan
        (`Candidate.since`), chunks wholly before the new text are skipped."""
        best: tuple[float, float, Candidate, int, str, str, np.ndarray, np.ndarray, int | None] | None = None
        for candidate in candidates[:MAX_CANDIDATES]:
            for offset, chunk in chunks(candidate.text):
                if candidate.since and offset + len(chunk) <= candidate.since:
                    continue
                lowered, raw = _buckets(chunk)
                buckets = _all_buckets(lowered, raw, self.words)
                logit, norm, window = self._combined(lowered, raw, buckets, max(0, candidate.since - offset))
                p = _sigmoid(logit)
                if best is None or p > best[0]:
                    best = (p, norm, candidate, offset, chunk, lowered, raw, buckets, window)
        if best is None:
            return []
        p, norm, candidate, offset, text, lowered, raw, buckets, window = best
        score = self.calibrate(p)
        if score < MIN_SCORE:
            return []
        if window is None or self.intent is None:
            explained = self._explain(lowered, raw, norm)
        else:  # the words of the deciding window, by the intent head's weights, at their offsets in the text
            part, part_raw = _buckets(lowered[window : window + WINDOW])
            part_norm = math.sqrt(float(self.intent.idf_sq[_unique(part_raw)].sum())) or 1.0
            explained = [
                (start + window, end + window, weight)
                for start, end, weight in self._explain(part, part_raw, part_norm, weights=self.intent.weights)
            ]
        same_offsets = len(lowered) == len(text)  # lower() can change a text's length ("İ")
        source = text if same_offsets else lowered
        evidence = [source[start:end][:80] for start, end, _ in explained]
        if candidate.view != "normalized":
            evidence = [f"{candidate.view}: {item}" for item in evidence]
        spans = (
            [Span(offset + start, offset + end) for start, end, _ in explained]
            if candidate.view == "normalized" and same_offsets
            else []
        )
        return [
            Finding(
                detector=DETECTOR,
                score=score,
                threat_type=self._threat_type(buckets),
                severity=_severity(score),
                evidence=evidence,
                spans=spans,
                view=candidate.view,
            )
        ]


def _calibrate(p: float, t: float) -> float:
    """`p` mapped linearly on [0, t] and on [t, 1] so that t becomes `BLOCK_SCORE`."""
    if p <= t:
        return max(0.0, BLOCK_SCORE * p / t)
    return min(1.0, BLOCK_SCORE + (1.0 - BLOCK_SCORE) * (p - t) / (1.0 - t))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# --- training -------------------------------------------------------------------------------------------------------


def _matrix(texts: Sequence[str], words: bool = WORD_NGRAMS) -> Any:
    """The binary bucket matrix (CSR, float64) of normalized texts."""
    from scipy import sparse

    rows = [features(text, words) for text in texts]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), _SIZE))


def _idf(matrix: Any) -> np.ndarray:
    """Smoothed inverse document frequency per bucket (as scikit-learn's TfidfTransformer computes it)."""
    n = matrix.shape[0]
    df = np.bincount(matrix.indices, minlength=_SIZE)
    return np.log((1.0 + n) / (1.0 + df)) + 1.0


def _weighted(matrix: Any, idf: np.ndarray) -> Any:
    """Rows weighted by idf and scaled to unit length: what the linear models see."""
    from sklearn.preprocessing import normalize as l2_normalize

    weighted = matrix.multiply(idf.reshape(1, -1)).tocsr()
    return l2_normalize(weighted, norm="l2", copy=False)


def _fit(
    matrix: Any, labels: np.ndarray, types: list[str], *, seed: int, c: float, words: bool = WORD_NGRAMS
) -> Classifier:
    """Fit the attack model and the threat-type model. Only the buckets that occur in the training rows are given to
    scikit-learn (a small bank uses a fraction of the 2**BITS buckets; the others keep a zero weight)."""
    from sklearn.linear_model import LogisticRegression

    idf = _idf(matrix)
    seen = np.bincount(matrix.indices, minlength=_SIZE) > 0
    used = np.flatnonzero(seen)
    x = _weighted(matrix, idf)[:, used]
    model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=seed)
    model.fit(x, labels)
    weights = np.zeros(_SIZE)
    weights[used] = model.coef_[0]
    attack_rows = np.flatnonzero(labels == 1)
    attack_types = [types[i] for i in attack_rows]
    kinds = sorted(set(attack_types)) or [ThreatType.PROMPT_INJECTION.value]
    type_weights = np.zeros((len(kinds), _SIZE))
    type_intercepts = np.zeros(len(kinds))
    if len(kinds) == 2:  # binary: one coefficient row, for the second class
        typer = LogisticRegression(C=10.0, solver="liblinear", max_iter=1000, random_state=seed)
        typer.fit(x[attack_rows], attack_types)
        type_weights[1, used] = typer.coef_[0]
        type_intercepts[1] = typer.intercept_[0]
        kinds = [str(k) for k in typer.classes_]
    elif len(kinds) > 2:
        typer = LogisticRegression(C=10.0, max_iter=1000, random_state=seed)
        typer.fit(x[attack_rows], attack_types)
        type_weights[:, used] = typer.coef_
        type_intercepts[:] = typer.intercept_
        kinds = [str(k) for k in typer.classes_]
    return Classifier(
        weights=(weights * idf).astype(np.float32),
        # Buckets never seen in training count for nothing, not even in the vector's length (as a vocabulary-based
        # tf-idf ignores unknown terms): gibberish around an attack (a GCG suffix, a rot13'd wrapper) cannot dilute it.
        idf_sq=np.where(seen, idf * idf, 0.0).astype(np.float32),
        intercept=float(model.intercept_[0]),
        threshold=0.5,
        types=kinds,
        type_weights=(type_weights * idf).astype(np.float32),
        type_intercepts=type_intercepts,
        words=words,
    )


def _window_matrix(texts: Sequence[str]) -> tuple[Any, np.ndarray]:
    """(the binary bucket matrix of every window of the normalized texts, the text each window row belongs to)."""
    from scipy import sparse

    rows: list[np.ndarray] = []
    owners: list[int] = []
    for k, text in enumerate(texts):
        lowered, raw = _buckets(text)
        windows, first, _ = _windows(raw, len(lowered))
        for row, keep in zip(windows, first, strict=True):
            rows.append(row[keep])
            owners.append(k)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    matrix = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), _SIZE))
    return matrix, np.asarray(owners, dtype=np.int64)


def _fit_intent(windows: Any, labels: np.ndarray, *, seed: int) -> IntentHead:
    """The harmful-request head: logistic regression over idf-weighted, unit-length window vectors (idf over
    windows), harmful windows (label 1) against benign ones."""
    from sklearn.linear_model import LogisticRegression

    df = np.bincount(windows.indices, minlength=_SIZE)
    idf = np.log((1.0 + windows.shape[0]) / (1.0 + df)) + 1.0
    used = np.flatnonzero(df > 0)
    x = _weighted(windows, idf)[:, used]
    model = LogisticRegression(
        C=INTENT_C, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=seed
    )
    model.fit(x, labels)
    weights = np.zeros(_SIZE)
    weights[used] = model.coef_[0]
    return IntentHead(
        weights=(weights * idf).astype(np.float32),
        idf_sq=np.where(df > 0, idf * idf, 0.0).astype(np.float32),
        intercept=float(model.intercept_[0]),
        offset=0.0,
    )


def _window_logits(head: IntentHead, windows: Any, owners: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The best window logit of each text in `rows` (texts without a window get the intercept)."""
    pick = np.isin(owners, rows)
    part = windows[pick]
    sums = part @ head.weights.astype(np.float64)
    norms = np.sqrt(part @ head.idf_sq.astype(np.float64))
    norms[norms == 0] = 1.0
    best = np.full(int(rows.max()) + 1 if len(rows) else 0, -np.inf)
    np.maximum.at(best, owners[pick], head.intercept + sums / norms)
    out = best[rows]
    out[~np.isfinite(out)] = head.intercept
    return out


def _logit_at_fpr(logits: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The lowest logit that at most `fpr` of the benign rows reach (their highest excluded logit)."""
    benign = np.sort(logits[labels == 0])[::-1]
    allowed = math.floor(fpr * len(benign))
    return float(benign[min(allowed, len(benign) - 1)])


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray, target_fpr: float = TARGET_FPR) -> float:
    """The operating threshold: the lowest probability that keeps the false-positive rate on benign rows at most
    `target_fpr` (so recall is as high as it can be), moved halfway down to the highest benign probability it
    excludes, for a margin on unseen prompts. Kept within [0.05, 0.95]."""
    benign = np.sort(probabilities[labels == 0])[::-1]
    attacks = probabilities[labels == 1]
    if len(benign) == 0:
        return 0.5
    allowed = math.floor(target_fpr * len(benign))
    if allowed >= len(benign):
        return 0.05
    excluded = float(benign[allowed])  # the highest benign probability that must stay below the threshold
    above = np.concatenate([attacks[attacks > excluded], benign[benign > excluded]])
    lowest_kept = float(above.min()) if len(above) else min(1.0, excluded + 0.1)
    return float(min(0.95, max(0.05, (excluded + lowest_kept) / 2)))


def _split(labels: np.ndarray, strata: list[str], holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    counts: dict[str, int] = {}
    for s in strata:
        counts[s] = counts.get(s, 0) + 1
    stratify: Any = strata if min(counts.values()) >= 2 else labels
    train_rows, holdout_rows = train_test_split(rows, test_size=holdout, stratify=stratify, random_state=seed)
    return np.sort(train_rows), np.sort(holdout_rows)


def metrics(scores: Sequence[float], labels: Sequence[int], threshold: float = BLOCK_SCORE) -> dict[str, float]:
    """Precision, recall, F1, false-positive rate and accuracy of `score >= threshold` as the attack decision."""
    s = np.asarray(scores, dtype=float) >= threshold
    y = np.asarray(labels) == 1
    tp, fp = int(np.sum(s & y)), int(np.sum(s & ~y))
    fn, tn = int(np.sum(~s & y)), int(np.sum(~s & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0,
        "accuracy": round((tp + tn) / len(s), 4) if len(s) else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _folds(
    labels: np.ndarray, strata: list[str], groups: Sequence[str] | None, holdout: float, seed: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(train rows, held-out rows) pairs and how they were made: whole groups (sources) held out in `GROUP_FOLDS`
    folds when groups are given and every fold keeps both classes to learn from; else one stratified split."""
    if groups is not None and len(set(groups)) >= 2:
        from sklearn.model_selection import GroupKFold

        splitter = GroupKFold(n_splits=min(GROUP_FOLDS, len(set(groups))))
        folds = [(np.sort(a), np.sort(b)) for a, b in splitter.split(labels, labels, list(groups))]
        if all(0 < labels[a].sum() < len(a) for a, _ in folds):
            return folds, f"sources held out ({len(folds)} folds)"
    train_rows, holdout_rows = _split(labels, strata, holdout, seed)
    return [(train_rows, holdout_rows)], "stratified random split"


def train(
    texts: list[str],
    labels: list[int],
    categories: list[str],
    *,
    seed: int = 0,
    holdout: float = 0.2,
    c: float = 10.0,
    target_fpr: float = TARGET_FPR,
    words: bool = WORD_NGRAMS,
    groups: Sequence[str] | None = None,
    intent: bool = True,
) -> tuple[Classifier, dict]:
    """Fit on held-out folds, choose the operating threshold and measure on the held-out rows, then refit on ALL rows
    with the same settings and keep the held-out threshold and intent offset (more data for the shipped model; the
    metrics are those of the held-out models, so they are honest about unseen prompts).

    With `groups` (each row's source) whole sources are held out (see `_folds`): the threshold then keeps the
    false-positive rate at `target_fpr` on benign prompts of kinds not trained on. Without, one split stratified by
    category, of `holdout` of the rows. The intent head (`intent`) is fitted when the bank has at least two harmful
    requests (categories in `INTENT_CATEGORIES`) and enough held-out benign rows to place its threshold (200 at 1%).

    Texts are normalized as the engine normalizes an input. Returns the classifier and the metrics: precision,
    recall, f1, fpr, accuracy, threshold, n_train, n_holdout and recall per category (on the held-out rows).
    """
    if not (len(texts) == len(labels) == len(categories)):
        raise ValueError("texts, labels and categories must have the same length")
    if groups is not None and len(groups) != len(texts):
        raise ValueError("groups must have one entry per text")
    y = np.asarray([1 if int(label) else 0 for label in labels])
    if y.sum() < 2 or (len(y) - y.sum()) < 2:
        raise ValueError("training needs at least two attack and two benign prompts")
    normalized = [normalize(text).text for text in texts]
    types = [threat_of(category).value if yi else "" for category, yi in zip(categories, y, strict=True)]
    matrix = _matrix(normalized, words)
    harmful = np.array([yi == 1 and category in INTENT_CATEGORIES for category, yi in zip(categories, y, strict=True)])
    folds, how = _folds(y, list(categories), groups, holdout, seed)
    held_rows = np.concatenate([b for _, b in folds])
    # The offset needs the intent head's logit at half the FPR budget: on fewer held-out benign rows than that budget
    # can resolve (at least one row above it), it would be the noise of the top benign score, so no intent head.
    use_intent = intent and harmful.sum() >= 2 and (y[held_rows] == 0).sum() * target_fpr / 2 >= 1
    if use_intent:
        windows, owners = _window_matrix(normalized)
        intent_rows = harmful | (y == 0)

    attack_logits = np.zeros(len(y))
    intent_logits = np.full(len(y), -np.inf)
    for train_rows, holdout_rows in folds:
        probe = _fit(matrix[train_rows], y[train_rows], [types[i] for i in train_rows], seed=seed, c=c, words=words)
        attack_logits[holdout_rows] = [probe._logit(matrix[i].indices)[0] for i in holdout_rows]
        fit_rows = train_rows[intent_rows[train_rows]] if use_intent else train_rows[:0]
        if use_intent and harmful[fit_rows].sum() and (~harmful[fit_rows]).sum():
            pick = np.isin(owners, fit_rows)
            head = _fit_intent(windows[pick], harmful[owners[pick]].astype(int), seed=seed)
            intent_logits[holdout_rows] = _window_logits(head, windows, owners, holdout_rows)
    held_y = y[held_rows]
    intent_logits[~np.isfinite(intent_logits)] = -1e6  # a fold without harmful rows to learn from: no intent score
    offset = 0.0
    if use_intent:
        # Half the false-positive budget each: the offset puts the intent head's operating logit on the attack head's.
        offset = _logit_at_fpr(intent_logits[held_rows], held_y, target_fpr / 2) - _logit_at_fpr(
            attack_logits[held_rows], held_y, target_fpr / 2
        )
    combined = np.maximum(attack_logits[held_rows], intent_logits[held_rows] - offset)
    held_p = np.array([_sigmoid(float(v)) for v in combined])
    threshold = choose_threshold(held_p, held_y, target_fpr)
    held_scores = [_calibrate(p, threshold) for p in held_p]
    result: dict[str, Any] = metrics(held_scores, held_y)
    per_category: dict[str, float] = {}
    for category in sorted(set(categories)):
        rows = [k for k, i in enumerate(held_rows) if categories[i] == category and y[i] == 1]
        if rows:
            per_category[category] = round(sum(held_scores[k] >= BLOCK_SCORE for k in rows) / len(rows), 4)
    result.update(
        threshold=round(threshold, 6),
        n_train=len(y) - len(held_rows) if len(folds) == 1 else len(y),
        n_holdout=len(held_rows),
        n_attacks=int(y.sum()),
        n_benign=int(len(y) - y.sum()),
        per_category_recall=per_category,
        seed=seed,
        c=c,
        target_fpr=target_fpr,
        words=words,
        intent=bool(use_intent),
        intent_offset=round(offset, 6),
        validation=how,
        refit="all rows; threshold from the held-out rows",
    )

    final = _fit(matrix, y, types, seed=seed, c=c, words=words)
    final.threshold = threshold
    if use_intent:
        head = _fit_intent(windows[intent_rows[owners]], harmful[owners[intent_rows[owners]]].astype(int), seed=seed)
        head.offset = offset
        final.intent = head
    final.info = {"metrics": {k: result[k] for k in ("precision", "recall", "fpr", "f1")}, "n": len(y)}
    return final, result
