"""Normalization: one canonical form of a prompt's text, its hash (the exact-duplicate key) and what was hidden in it.

Decisions, and why:

- The **stored** text stays as given, apart from its ends (`clean_text`: leading and trailing whitespace stripped, NUL
  characters removed because PostgreSQL cannot store them). Invisible characters, homoglyphs and odd spacing are
  often the attack itself; the red-team runner must send exactly what was imported and the firewall must train on it.
- The **normalized** text (`normalize_text`) is what "the same prompt" means: Unicode NFKC (full-width letters,
  ligatures and other compatibility forms fold to their plain form), invisible characters removed (zero-width
  characters, bidi controls and every other format character, variation selectors, Hangul fillers), the payload of
  Unicode tag characters (U+E0020-E007E, "ASCII smuggling") decoded and appended so hidden content is not lost, and
  every run of whitespace collapsed to one space. Case is kept (detectors may want it).
- The **hash** is SHA-256 of the normalized text case-folded: two prompts that differ only in case, spacing or
  invisible characters are exact duplicates, and the firewall can look an input up in the bank by the same key.
- What was removed is recorded as tags: `invisible_chars` (zero-width and other format characters), `bidi_controls`,
  `unicode_tags`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import NamedTuple

# Bidirectional controls: LRM, RLM, ALM, the embeddings/overrides and the isolates.
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TAG_RANGE = (0xE0000, 0xE007F)


# Invisible characters other than bidi controls and tag characters: every format (Cf) character of Unicode 14
# (soft hyphen, zero-width space/joiners, word joiner, invisible operators, BOM, interlinear annotation marks, ...)
# and the invisible ones Unicode does not class Cf (combining grapheme joiner, Hangul fillers, variation selectors).
_INVISIBLE = (
    "\u00ad\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200d\u2060-\u2064\u206a-\u206f\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\u034f\u115f\u1160\u3164\uffa0\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"
)


_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_BIDI_RE = re.compile(f"[{_BIDI}]")
_TAGS_RE = re.compile("[\U000e0000-\U000e007f]+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class NormalizedText(NamedTuple):
    """`text`: the normalized text; `hash`: SHA-256 hex of it case-folded; `tags`: what normalization removed."""

    text: str
    hash: str
    tags: tuple[str, ...]

    @property
    def normalized(self) -> str:
        """The normalized text (the same as `text`; reads better where the original text is also at hand)."""
        return self.text


def clean_text(text: str) -> str:
    """The text as it is stored: as given, without NUL characters and without whitespace at either end."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.strip()


def text_hash(normalized: str) -> str:
    """The exact-duplicate key of an already normalized text."""
    return hashlib.sha256(normalized.casefold().encode("utf-8", "surrogatepass")).hexdigest()


def _decode_tags(match: re.Match[str]) -> str:
    # Tag characters mirror ASCII 0x20-0x7E at U+E0020-E007E; the others (language tag, cancel tag) carry nothing.
    return "".join(chr(ord(ch) - 0xE0000) for ch in match.group() if 0xE0020 <= ord(ch) <= 0xE007E)


def normalize_text(text: str) -> NormalizedText:
    """Normalize a prompt's text (see the module docstring). Reused by the services and the firewall."""
    tags: list[str] = []
    if text.isascii():
        # The common case: nothing for NFKC to fold and no invisible characters to find.
        normalized = " ".join(text.split())
        return NormalizedText(normalized, text_hash(normalized), ())
    smuggled = ""
    if _TAGS_RE.search(text):
        tags.append("unicode_tags")
        smuggled = " ".join(filter(None, (_decode_tags(m) for m in _TAGS_RE.finditer(text))))
        text = _TAGS_RE.sub("", text)
    if _BIDI_RE.search(text):
        tags.append("bidi_controls")
        text = _BIDI_RE.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    if _INVISIBLE_RE.search(text):
        tags.append("invisible_chars")
        text = _INVISIBLE_RE.sub("", text)
    if smuggled:
        text = f"{text} {smuggled}"
    normalized = " ".join(text.split())
    return NormalizedText(normalized, text_hash(normalized), tuple(sorted(tags)))


def has_invalid_unicode(value: str) -> bool:
    """True for a string that cannot be encoded as UTF-8 (lone surrogates: undecodable bytes or bad escapes)."""
    return _SURROGATE_RE.search(value) is not None
