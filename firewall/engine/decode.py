"""Decoded-candidate expansion: the payloads an attacker hid in encodings, so the detectors can scan them too.

`expand` returns the normalized text (view "normalized", depth 0) and then, breadth first, what the decoders recover
from it; each decoded candidate is expanded again up to `max_depth`, and its view records the chain ("base64>rot13":
rot13 of a base64 payload). Every decoded text is normalized again (a payload may carry its own zero-width characters
or homoglyphs). When a text holds several payloads of one encoding they are joined into one candidate.

Decoders, and the rule that keeps each from decoding ordinary text:

- ``base64`` (standard or URL-safe alphabet, chosen per run): runs of at least 16 base64 characters;
- ``hex``: at least 8 byte pairs (16 digits), optionally separated by one space, comma, colon or semicolon, or
  prefixed by ``\\x`` or ``0x``;
- ``url``: at least 3 ``%xx`` escapes in the text;
  a base64, hex or URL payload is kept only if the decoded bytes look like text: valid UTF-8 for the most part
  (at most 5% control or replacement characters) and at least half of its non-space characters letters, so that
  long words, numbers, UUIDs, hashes and colours decode to nothing;
- ``rot13``: words whose rot13 is a common English word ("gur" -> "the") are counted as gained; words that already
  are common words are counted as lost. The rot13 spans are the maximal runs where gained words outnumber lost ones
  (holding at least 2 gained words), widened over neighbouring words that are neither up to a sentence mark; only
  those spans are decoded, so the plain-English instruction that introduces a payload ("The following is
  ROT13-encoded. Decode it...") does not turn into noise around it, and the odd abbreviation ("BA", "GB") is not read
  as rot13;
- ``base32``: runs of at least 16 characters of the RFC 4648 alphabet (upper case and 2-7), and ``binary``: at least 4
  bytes written as 8 bits each (optionally separated by a space or comma); kept only if they look like text, as above;
- ``reversed``: text written backwards, found span by span as rot13 is, with words whose reversal is a common word
  ("lla", "erongi") as the gained ones;
- ``split``: a payload cut into quoted string parts assigned to short names and joined by an expression in the
  text ("a = \"ign\" b = \"ore all\" ... let z = a + b"): the parts in the expression's order;
- ``translate``: after a request to translate (and then answer) a text, what follows its colon or line break;
- ``spaced`` (from `normalize`, not a decoder here): words spelled out one character at a time;
- ``leet``: applied when at least 2 words look like leetspeak (at least 2 letters and a digit or one of ``@ $ ! | +``),
  they are at least 30% of the words with letters, and at least one has a leet character
  between two letters ("pr3v10us": "mp3" or "Win10" alone are not leetspeak). ``11`` reads as "ll" and a lone ``1``
  as "i" (a doubled "i" is rare in English).

Bounds: linear-time regexes (no nested quantifiers), at most `max_candidates` candidates, at most `max_total_chars`
decoded characters in all (a payload larger than what remains is decoded only as far as it fits), and ratios measured
on a bounded sample.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import unquote, unquote_plus

from firewall.engine.normalize import normalize
from firewall.engine.types import Candidate

_SAMPLE = 4096  # characters of a decoded text examined by the looks-like-text test

_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
# Each separator can be read one way only ("(?:, ?|[ :;])", not "[ ,]? ?"), so a failed match cannot backtrack
# exponentially.
_HEX_RE = re.compile(r"(?:\\x|0x)?[0-9A-Fa-f]{2}(?:(?:, ?|[ :;])?(?:\\x|0x)?[0-9A-Fa-f]{2}){7,}")
_HEX_PAIR_RE = re.compile(r"(?:\\x|0x)?([0-9A-Fa-f]{2})")
_URL_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_BINARY_RE = re.compile(r"[01]{8}(?:[ ,]?[01]{8}){3,}")  # at least 4 bytes written as 8 bits each
_BINARY_BYTE_RE = re.compile(r"[01]{8}")
_MIN_BINARY_DIGITS = 32
_BASE32_RE = re.compile(r"[A-Z2-7]{16,}={0,6}")
# Payload splitting: string parts assigned to short names, then joined ("a = 'ign' b = 'ore all' ... z = a + b").
_ASSIGN_RE = re.compile(r"\b([A-Za-z_]\w{0,15})\s*=\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_CONCAT_RE = re.compile(r"\b[A-Za-z_]\w{0,15}(?:\s*\+\s*[A-Za-z_]\w{0,15})+")
_PLUS_RE = re.compile(r"\s*\+\s*")
# A request to translate a text (and then answer it), in the languages of the bank's translation wrappers.
# Each cue regex runs only on a text whose lower case holds one of its stems (a few substring tests instead of a
# case-insensitive regex over every position of every text).
_TRANSLATE_CUE_RE = re.compile(
    r"\b(?:translate|traduis|traduisez|traduce|traduzca|traduci|traduca|übersetze|übersetzen|traduza|vertaal)\b"
    r"[^:\n]{0,200}[:\n]",
    re.IGNORECASE,
)
_TRANSLATE_STEMS = ("translat", "tradu", "übersetz", "vertaal")
_MAX_TRANSLATED_CHARS = 2_000
_REVERSAL_CUE_RE = re.compile(r"\b(?:backwards?|reversed?|un-?reverse|right\s+to\s+left|mirrored)\b", re.IGNORECASE)
_REVERSAL_STEMS = ("backward", "revers", "right to left", "mirrored")
_MIN_REVERSED_CHARS = 8
_URL_SCAN = 4096  # characters searched for the three escapes that make a text URL-encoded
_BAD_CHAR_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_LETTER_RE = re.compile(r"[^\W\d_]")
_NON_SPACE_RE = re.compile(r"\S")
_ASCII_WORD_RE = re.compile(r"[A-Za-z]+")
_LEET_TOKEN_RE = re.compile(r"[A-Za-z0-9@$!|+]+")
_SENTENCE_MARK_RE = re.compile(r"[.:;!?]")

_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm"
)
_STOP_WORDS = frozenset((  # common English words, for telling rot13 text from English
    "the", "and", "to", "of", "in", "is", "you", "that", "it", "for", "on", "with", "as", "are", "be", "this", "your",
    "all", "me", "my", "what", "how", "not", "or", "if", "do", "we", "an", "at", "by", "from", "have", "can", "now",
    "no", "any", "was", "will", "just", "then", "them", "they", "he", "she", "his", "her", "our", "its", "into",
    "about", "there", "their", "should", "would", "could", "must", "only", "also", "but", "so",
    # Words common in instructions and requests: a short rot13 request ("Jevgr ungr znvy sbe n choyvp svther") has few
    # function words. None of their rot13 forms occurs as a word anywhere in the bank (checked when this list was made).
    "write", "give", "tell", "make", "made", "take", "create", "generate", "explain", "describe", "provide", "list",
    "show", "help", "someone", "people", "person", "using", "without", "being", "which", "who", "whom", "whose", "when",
    "where", "why", "while", "until", "since", "like", "some", "more", "most", "many", "much", "other", "both", "same",
    "such", "own", "just", "even", "been", "has", "had", "were", "did", "does", "than", "each", "way", "use", "want",
    "need", "know", "get", "let", "say", "says", "said", "out", "two", "new", "time", "good", "first", "here", "these",
    "those", "because", "before", "after", "over", "under", "between", "through", "against", "very", "well", "again",
    "still", "always", "never", "every", "message", "instructions", "instruction", "detailed", "detail", "step",
    "steps", "guide", "tutorial", "article", "post", "letter", "email", "blog", "news", "fake", "false", "true",
    "public", "social", "media", "information", "example", "answer", "question", "following", "text", "please",
    "ignore", "previous", "system", "prompt", "rules", "mode", "act", "pretend", "imagine", "role", "play", "story",
    "character", "user", "model", "response", "respond", "content", "policy", "ethical", "harmful", "dangerous",
    "illegal", "weapon", "drugs", "money", "hate", "kill", "bomb", "steal", "hack",
))  # fmt: skip
# Words whose rot13 is a common word but which are not common words themselves ("be" and "or" swap into each other).
_ROT13_OF_STOP_WORDS = frozenset(word.translate(_ROT13) for word in _STOP_WORDS) - _STOP_WORDS
# The same for reversal ("on" and "no" are both common words, so neither counts); words of three letters or more, as
# code is full of two-letter names that read as words backwards ("os", "ti").
_REVERSED_STOP_WORDS = frozenset(word[::-1] for word in _STOP_WORDS if len(word) >= 3) - _STOP_WORDS
_LEET_MAP = {
    "0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t",
}  # fmt: skip
_LEET = str.maketrans(_LEET_MAP)
# `1` stands for "i" as often as for "l": the second reading is its own candidate.
_LEET_L = str.maketrans({**_LEET_MAP, "1": "l"})
_LEET_CHARS = frozenset(_LEET_MAP)
# A letter next to a leet character: the cheap test that lets almost every text skip the leet word-by-word check.
_LEET_HINT_RE = re.compile(r"[A-Za-z][0-9@$!|+]|[0-9@$!|+][A-Za-z]")


def expand(
    normalized_text: str,
    *,
    extra: Iterable[tuple[str, str]] = (),
    max_depth: int = 2,
    max_candidates: int = 16,
    max_total_chars: int = 50_000,
) -> list[Candidate]:
    """The normalized text followed by the payloads decoded from it (see the module docstring for rules and bounds).

    `extra` holds (view, payload) pairs recovered elsewhere, such as `Normalized.payloads` (the Unicode-tag payload,
    the spelled-out words): each becomes a depth-1 candidate with its view and is expanded like a decoded payload.
    """
    candidates = [Candidate(normalized_text, "normalized", 0)]
    seen = {normalized_text}
    budget = max_total_chars

    def add(text: str, view: str, depth: int) -> None:
        nonlocal budget
        text = normalize(text[:budget]).text
        if text and text not in seen and len(candidates) < max_candidates:
            seen.add(text)
            budget -= len(text)
            candidates.append(Candidate(text, view, depth))

    if max_depth >= 1:
        for view, payload in extra:
            if payload and budget > 0:
                add(payload, view, 1)
    index = 0
    while index < len(candidates) and len(candidates) < max_candidates and budget > 0:
        parent = candidates[index]
        index += 1
        if parent.depth >= max_depth:
            continue
        for name, decoder in _DECODERS:
            if len(candidates) >= max_candidates or budget <= 0:
                break
            if name == "reversed" and parent.view.endswith("reversed"):
                continue  # reading it backwards again gives back (part of) its parent
            decoded = decoder(parent.text, budget)
            if decoded:
                view = name if parent.view == "normalized" else f"{parent.view}>{name}"
                add(decoded, view, parent.depth + 1)
    return candidates


def _looks_like_text(text: str) -> bool:
    """Whether decoded bytes are a message rather than the noise an ordinary word or number decodes to."""
    sample = text[:_SAMPLE]
    if len(sample.strip()) < 4:
        return False
    if len(_BAD_CHAR_RE.findall(sample)) > 0.05 * len(sample):
        return False
    return len(_LETTER_RE.findall(sample)) >= 0.5 * len(_NON_SPACE_RE.findall(sample))


def _text_runs(runs: Iterable[re.Match[str]], decode: Callable[[str, int], bytes | None], budget: int) -> str:
    """Each run's bytes (`decode(run, budget)`, None when the run is not of the encoding) read as UTF-8 and kept when
    they look like text, joined by a space; no more decoded characters than `budget`."""
    pieces: list[str] = []
    for match in runs:
        data = decode(match.group(), budget)
        if data is None:
            continue
        decoded = data.decode("utf-8", errors="replace")
        if _looks_like_text(decoded):
            pieces.append(decoded)
            budget -= len(decoded)
            if budget <= 0:
                break
    return " ".join(pieces)


def _base64_bytes(run: str, budget: int) -> bytes | None:
    run = run.rstrip("=")
    urlsafe = "-" in run or "_" in run
    if urlsafe and ("+" in run or "/" in run):
        return None  # two alphabets mixed: not base64
    run = run[: (budget * 4 // 3) // 4 * 4 + 4]  # decode no more than the budget can take
    if len(run) % 4 == 1:
        run = run[:-1]
    run += "=" * (-len(run) % 4)
    try:
        return base64.urlsafe_b64decode(run) if urlsafe else base64.b64decode(run, validate=True)
    except (binascii.Error, ValueError):
        return None


def _hex_bytes(run: str, budget: int) -> bytes:
    return bytes.fromhex("".join(_HEX_PAIR_RE.findall(run[: budget * 6]))[: budget * 2])


def _binary_bytes(run: str, budget: int) -> bytes:
    bits = "".join(_BINARY_BYTE_RE.findall(run[: budget * 9]))
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _base32_bytes(run: str, budget: int) -> bytes | None:
    run = run.rstrip("=")[: budget * 8 // 5 + 8]
    run = run[: len(run) // 8 * 8] if len(run) % 8 in (1, 3, 6) else run  # lengths no encoder writes
    try:
        return base64.b32decode(run + "=" * (-len(run) % 8))
    except (binascii.Error, ValueError):
        return None


def _decode_base64(text: str, budget: int) -> str:
    return _text_runs(_BASE64_RE.finditer(text), _base64_bytes, budget)


def _decode_hex(text: str, budget: int) -> str:
    return _text_runs(_HEX_RE.finditer(text), _hex_bytes, budget)


def _decode_binary(text: str, budget: int) -> str:
    if text.count("0") + text.count("1") < _MIN_BINARY_DIGITS:  # fewer digits than four bytes hold
        return ""
    return _text_runs(_BINARY_RE.finditer(text), _binary_bytes, budget)


def _decode_base32(text: str, budget: int) -> str:
    return _text_runs(_BASE32_RE.finditer(text), _base32_bytes, budget)


def _decode_url(text: str, budget: int) -> str:
    if len(_URL_ESCAPE_RE.findall(text, 0, _URL_SCAN)) < 3:
        return ""
    # Form encoding writes spaces as "+": read it that way when the text has no spaces of its own.
    decoded = (unquote if " " in text else unquote_plus)(text[: budget * 3], errors="replace")
    return decoded if decoded != text and _looks_like_text(decoded) else ""


def _rot13_segments(
    words: list[re.Match[str]],
    text: str,
    gained_words: frozenset[str] = _ROT13_OF_STOP_WORDS,
    min_gained: int = 2,
) -> list[tuple[int, int]]:
    """The (start, end) character spans of `text` that read as rot13 (or, with `gained_words`, as another per-word
    transform such as reversal): each word scores +1 when it is in `gained_words` (its rot13 is a common word), -1
    when it already is a common word, 0 otherwise; a segment is a maximal run of positive running sum (Kadane) holding
    at least `min_gained` gained words, widened over neighbouring neutral words up to a lost word or a sentence mark
    (so a payload's first and last words come along, but not the plain-English instruction that introduces it)."""
    scores = []
    for match in words:
        word = match.group().lower()
        scores.append(1 if word in gained_words else -1 if word in _STOP_WORDS else 0)
    segments: list[tuple[int, int]] = []
    total = best = gained = best_gained = 0
    first = best_end = -1
    for position, score in enumerate(scores):
        if total <= 0 and score > 0:
            total, best, gained, first = 0, 0, 0, position
        if first < 0:
            continue
        total += score
        gained += score > 0
        if total > best:
            best, best_end, best_gained = total, position, gained
        if total <= 0 or position == len(scores) - 1:
            if best_gained >= min_gained:
                segments.append((first, best_end))
            total, first = 0, -1
    spans = []
    for first, last in segments:
        while (
            first > 0
            and scores[first - 1] == 0
            and not _SENTENCE_MARK_RE.search(text, words[first - 1].end(), words[first].start())
        ):
            first -= 1
        while (
            last + 1 < len(scores)
            and scores[last + 1] == 0
            and not _SENTENCE_MARK_RE.search(text, words[last].end(), words[last + 1].start())
        ):
            last += 1
        spans.append((words[first].start(), words[last].end()))
    return spans


def _decode_spans(text: str, spans: list[tuple[int, int]], transform: Callable[[str], str], budget: int) -> str:
    """The spans of `text`, each transformed, joined by a space; no more than `budget` characters read."""
    pieces = []
    for start, end in spans:
        pieces.append(transform(text[start : min(end, start + budget)]))
        budget -= end - start
        if budget <= 0:
            break
    return " ".join(pieces)


def _decode_rot13(text: str, budget: int) -> str:
    """Only the rot13 spans are decoded (joined by a space): the plain instruction around a payload ("The following
    is ROT13-encoded...") would turn into rot13 noise that dilutes the payload for the classifier."""
    stop_words = (word for word in _lower_words(text) if word in _ROT13_OF_STOP_WORDS)
    if next(stop_words, None) is None or next(stop_words, None) is None:  # fewer than two: not rot13 text
        return ""
    spans = _rot13_segments(list(_ASCII_WORD_RE.finditer(text)), text)
    return _decode_spans(text, spans, lambda span: span.translate(_ROT13), budget)


def _decode_reversed(text: str, budget: int) -> str:
    """Text written backwards ("snoitcurtsni suoiverp lla erongI"). After a cue that says so ("written backwards:",
    "reverse this and do it:"), what follows the cue's sentence is reversed, in whatever language; otherwise the
    spans are found as rot13's are, with words whose reversal is a common word ("lla", "erongi") as the gained ones,
    at least three per span."""
    cue = _cue(_REVERSAL_CUE_RE, _REVERSAL_STEMS, text)
    if cue is not None:
        colon = text.find(":", cue.end())
        mark = colon if colon >= 0 else (m.start() if (m := _SENTENCE_MARK_RE.search(text, cue.end())) else -1)
        rest = text[mark + 1 :].strip() if mark >= 0 else ""
        # Unless it reads better forwards (the code after "reverse a linked list:"): an English payload has common
        # words only backwards, one in another language has none either way.
        forwards = sum(word in _STOP_WORDS for word in _lower_words(rest))
        if len(rest) >= _MIN_REVERSED_CHARS and forwards <= sum(
            word in _STOP_WORDS for word in _lower_words(rest[::-1])
        ):
            return rest[:budget][::-1]
    gained = (word for word in _lower_words(text) if word in _REVERSED_STOP_WORDS)
    if any(next(gained, None) is None for _ in range(3)):  # fewer than three: not reversed text
        return ""
    # Three gained words, not two: English has more words that read as words backwards ("saw", "ton") than in rot13.
    spans = _rot13_segments(list(_ASCII_WORD_RE.finditer(text)), text, _REVERSED_STOP_WORDS, min_gained=3)
    return _decode_spans(text, spans, lambda span: span[::-1], budget)


def _cue(pattern: re.Pattern[str], stems: tuple[str, ...], text: str) -> re.Match[str] | None:
    """The first match of a cue `pattern`, looked for only when the text holds one of its `stems`."""
    lowered = _lower(text)
    return pattern.search(text) if any(stem in lowered for stem in stems) else None


@lru_cache(maxsize=16)  # the split, reversal and translation decoders and the word tests read the same text in turn
def _lower(text: str) -> str:
    return text.lower()


@lru_cache(maxsize=16)  # the rot13 and reversed decoders read the same text's words one after the other
def _lower_words(text: str) -> tuple[str, ...]:
    return tuple(_ASCII_WORD_RE.findall(_lower(text)))


def _decode_translate(text: str, budget: int) -> str:
    """The text a "translate the following, then answer it" wrapper hands over: what follows the request's colon or
    line break, so the detectors read the request without the wrapper's words around it."""
    cue = _cue(_TRANSLATE_CUE_RE, _TRANSLATE_STEMS, text)
    if cue is None:
        return ""
    rest = text[cue.end() :].strip()
    # The request right after the wrapper is what its words dilute; a long text is read whole in the normalized view.
    return rest[: min(budget, _MAX_TRANSLATED_CHARS)] if len(rest) >= _MIN_REVERSED_CHARS else ""


def _string_literal(literal: str) -> str:
    """The value of a quoted string as JSON or Python writes it (escapes read where they are valid)."""
    body = literal[1:-1]
    if literal[0] == '"':
        try:
            return str(json.loads(literal))
        except ValueError:
            return body
    return body.replace("\\'", "'").replace("\\n", "\n")


def _decode_split(text: str, budget: int) -> str:
    """A payload cut into quoted parts that the text then asks to join ("a = ..., b = ..., z = a + b"): the parts
    joined in the order the expression names them."""
    if "=" not in text or "+" not in text:
        return ""
    parts = {match.group(1): match.group(2) for match in _ASSIGN_RE.finditer(text)}
    if len(parts) < 2:
        return ""
    for expression in _CONCAT_RE.finditer(text):
        names = _PLUS_RE.split(expression.group())
        if all(name in parts for name in names):
            return "".join(_string_literal(parts[name]) for name in names)[:budget]
    return ""


_HEXISH_RE = re.compile(r"[0-9a-fA-F]{8,}")


def _is_leet_word(token: str) -> bool:
    """Letters with leet characters among them, and not a run of hex digits (a hash or an id)."""
    if not any(ch in _LEET_CHARS for ch in token) or _HEXISH_RE.fullmatch(token):
        return False
    return sum(ch.isalpha() for ch in token) >= 2


def _has_inner_leet(token: str) -> bool:
    return any(
        token[i] in _LEET_CHARS and token[i - 1].isalpha() and token[i + 1 :].lstrip("0123456789@$!|+")[:1].isalpha()
        for i in range(1, len(token) - 1)
    )


@lru_cache(maxsize=16)  # the leet and leet_l decoders ask about the same text one after the other
def _looks_leet(text: str) -> bool:
    if not _LEET_HINT_RE.search(text):
        return False
    tokens = _LEET_TOKEN_RE.findall(text)
    with_letters = sum(1 for token in tokens if not token.isdigit())
    leet = [token for token in tokens if _LEET_HINT_RE.search(token) and _is_leet_word(token)]
    return len(leet) >= 2 and len(leet) >= 0.3 * with_letters and any(_has_inner_leet(token) for token in leet)


def _leet_words(text: str, table: dict[int, str]) -> str:
    """`text` with its leet words read as letters; numbers of three digits or more ("2022", "1890") stay as they are,
    while shorter ones are read ("70" is "to", "15" is "is")."""

    def word(match: re.Match[str]) -> str:
        leet = match.group()
        if len(leet) >= 3 and leet.isdigit():
            return leet
        return leet.replace("11", "ll").translate(table)

    return _LEET_TOKEN_RE.sub(word, text)


def _decode_leet(text: str, budget: int) -> str:
    if not _looks_leet(text):
        return ""
    return _leet_words(text[:budget], _LEET)


def _decode_leet_l(text: str, budget: int) -> str:
    """The reading with every `1` as "l" ("ru13$" → "rules"), only when there is a `1` to read differently."""
    if "1" not in text or not _looks_leet(text):
        return ""
    return _leet_words(text[:budget], _LEET_L)


_DECODERS: tuple[tuple[str, Callable[[str, int], str]], ...] = (
    ("base64", _decode_base64),
    ("hex", _decode_hex),
    ("base32", _decode_base32),
    ("binary", _decode_binary),
    ("url", _decode_url),
    ("split", _decode_split),
    ("translate", _decode_translate),
    ("rot13", _decode_rot13),
    ("reversed", _decode_reversed),
    ("leet", _decode_leet),
    ("leet_l", _decode_leet_l),
)
