"""Input normalization: the one text every detector reads, and a record of what was hidden in the input.

Steps, in order, and why:

1. Characters that render as nothing are removed and counted by kind: ``control`` (C0/C1 control characters other
   than whitespace), ``invisible`` (zero-width characters, soft hyphen, word joiner, invisible operators, BOM,
   variation selectors, Hangul fillers, ...), ``bidi`` (embeddings, overrides, isolates, LRM/RLM/ALM) and
   ``unicode_tags`` (U+E0000-E007F). They split keywords ("ig\u200bnore") or hide text, so a detector must not see
   them. Removal comes before NFKC so that a zero-width character cannot block a composition.
2. The payload of the tag characters ("ASCII smuggling": U+E0020-E007E mirror ASCII) is decoded into ``tag_payload``
   and *not* appended to the text; the decoder expands it as its own candidate (view ``unicode_tags``).
3. NFKC folds full-width letters, ligatures, mathematical alphanumerics, circled and other compatibility forms.
4. Homoglyphs (Cyrillic, Greek and other look-alikes of Latin letters) are folded to Latin, word by word, under this
   rule: a word (a run of ``\\w`` characters) is folded when it contains a Latin letter (a mixed-script word, such as
   "ignore" typed with Cyrillic i, o and e, is never honest text), or when every one of its letters has a Latin
   look-alike *and* the text as a whole is mostly Latin (a word such as "pop" typed entirely in Cyrillic letters inside
   an English sentence). Words of real Russian or Greek text are all non-Latin and sit in a text that is not mostly
   Latin, so they are left alone.
5. Whitespace runs collapse to one space and the ends are stripped.

The bank's `promptbank.pipeline.normalize` makes the same first three decisions; it is not imported because its
package pulls in Django models and the engine stays plain Python.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


def _char_class(*ranges: tuple[int, int]) -> str:
    """A regex character class of code-point ranges (ranges, not listed characters: the engine matches them fast)."""
    return "[" + "".join(f"\\U{start:08x}-\\U{end:08x}" for start, end in ranges) + "]"


_CONTROL = ((0x00, 0x08), (0x0E, 0x1B), (0x7F, 0x9F))
_BIDI = ((0x200E, 0x200F), (0x061C, 0x061C), (0x202A, 0x202E), (0x2066, 0x2069))
_INVISIBLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (format characters)
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels (render as nothing)
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200D),  # zero-width space, non-joiner, joiner
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x206A, 0x206F),  # deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # byte-order mark / zero-width no-break space
    (0xFFA0, 0xFFA0),  # half-width Hangul filler
    (0xFFF9, 0xFFFB),  # interlinear annotation marks
    (0x1D173, 0x1D17A),  # musical format characters
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
_TAGS = ((_TAG_FIRST, _TAG_LAST),)

_KIND_RES = {
    "control": re.compile(_char_class(*_CONTROL)),
    "bidi": re.compile(_char_class(*_BIDI)),
    "invisible": re.compile(_char_class(*_INVISIBLE)),
}
# One search tells the common case (nothing to remove) from the rest.
_REMOVABLE_RE = re.compile(_char_class(*_CONTROL, *_BIDI, *_INVISIBLE, *_TAGS))
_TAGS_RE = re.compile(_char_class(*_TAGS) + "+")
_TAG_TO_ASCII = {cp: (cp - _TAG_FIRST if 0x20 <= cp - _TAG_FIRST <= 0x7E else None) for cp in range(0xE0000, 0xE0080)}

# Common confusables of Latin letters (after NFKC, which already handles full-width and mathematical letters),
# written as escapes because the look-alikes are indistinguishable in source. Not Turkish dotless i (U+0131): it is
# a real letter of Latin-script text.
_HOMOGLYPHS = {
    # Cyrillic
    "\u0430": "a", "\u0435": "e", "\u04bb": "h", "\u0456": "i", "\u0458": "j", "\u04cf": "l", "\u043e": "o",
    "\u0440": "p", "\u0441": "c", "\u051b": "q", "\u0455": "s", "\u0443": "y", "\u051d": "w", "\u0445": "x",
    "\u0501": "d", "\u04af": "y", "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041d": "H", "\u0406": "I",
    "\u0408": "J", "\u041a": "K", "\u041c": "M", "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0405": "S",
    "\u0422": "T", "\u0425": "X", "\u0423": "Y", "\u04ae": "Y", "\u051a": "Q", "\u051c": "W", "\u04c0": "I",
    # Greek
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K",
    "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    "\u03b1": "a", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t",
    "\u03c5": "u", "\u03c7": "x",
    # Armenian and IPA
    "\u0585": "o", "\u057d": "u", "\u0570": "h", "\u0581": "g", "\u0251": "a", "\u0261": "g",
}  # fmt: skip
_FOLD_TABLE = str.maketrans(_HOMOGLYPHS)
_HOMOGLYPH_RE = re.compile(f"[{''.join(_HOMOGLYPHS)}]")
_WORD_TAIL_RE = re.compile(r"\w*")
_LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_OTHER_LETTER_RE = re.compile(r"[^\W\d_A-Za-z\u00c0-\u024f]")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The normalized text and what normalization took out of the input (evidence of obfuscation in itself)."""

    text: str
    # Removed characters by kind ("control", "invisible", "bidi", "unicode_tags"); only kinds that occurred.
    removed: dict[str, int] = field(default_factory=dict)
    tag_payload: str = ""
    homoglyphs_folded: int = 0
    # Words spelled out a character at a time ("I g n o r e   a l l", "i.g.n.o.r.e"), read back as words: runs of
    # single characters joined by one separator become words, wider gaps between runs stay word breaks.
    spaced_payload: str = ""

    @property
    def obfuscated(self) -> bool:
        """Whether anything hidden or disguised was found: a clean input has nothing to remove or fold."""
        return bool(self.removed or self.tag_payload or self.homoglyphs_folded)

    @property
    def payloads(self) -> list[tuple[str, str]]:
        """(view, text) of what normalizing recovered beside the text, for `decode.expand` to scan as candidates."""
        found = [("unicode_tags", self.tag_payload), ("spaced", self.spaced_payload)]
        return [(view, text) for view, text in found if text]


def normalize(text: str) -> Normalized:
    """Normalize an input for the detectors (see the module docstring for the steps and the homoglyph rule)."""
    removed: dict[str, int] = {}
    if text.isascii():
        # The common case: no NFKC, invisible, bidi, tag or homoglyph work to do.
        text, count = _KIND_RES["control"].subn("", text)
        if count:
            removed["control"] = count
        return Normalized(" ".join(text.split()), removed, spaced_payload=_spaced_payload(text))

    tag_payload = ""
    if _REMOVABLE_RE.search(text):
        runs = _TAGS_RE.findall(text)
        if runs:
            tag_payload = " ".join(filter(None, (run.translate(_TAG_TO_ASCII) for run in runs)))
            removed["unicode_tags"] = sum(map(len, runs))
            text = _TAGS_RE.sub("", text)
        for kind, pattern in _KIND_RES.items():
            text, count = pattern.subn("", text)
            if count:
                removed[kind] = count
    text = unicodedata.normalize("NFKC", text)
    folded = 0
    if _HOMOGLYPH_RE.search(text):
        text, folded = _fold_homoglyphs(text)
    return Normalized(
        " ".join(text.split()), removed, " ".join(tag_payload.split()), folded, spaced_payload=_spaced_payload(text)
    )


# A run of at least three single characters joined by one and the same separator (a space, dot, dash, underscore or
# asterisk); the run ends where the gap widens ("I g n o r e   a l l": two runs).
_SPACED_RUN_RE = re.compile(r"(?<!\w)\w(?P<sep>[ .*_\-])\w(?:(?P=sep)\w)+(?!\w)")
MIN_SPACED_CHARACTERS = 8  # in all runs: "x y z" or "a-b-c" alone is not a spelled-out message


def _spaced_payload(text: str) -> str:
    """The spelled-out runs read as words, one after the other ("Ignore all previous"), or "" when there are too few
    spelled-out characters. The rest of the text is in the normalized text already."""
    words = [run.group()[::2] for run in _SPACED_RUN_RE.finditer(text)]
    return " ".join(words) if sum(map(len, words)) >= MIN_SPACED_CHARACTERS else ""


def _fold_homoglyphs(text: str) -> tuple[str, int]:
    """Fold look-alikes to Latin in the words the module docstring's rule selects; return the text and the count.

    Only words that can qualify are visited, each once: in mostly Latin text the words around a look-alike, otherwise
    the words around a Latin letter (in real Russian or Greek text, the few Latin words), so the cost follows the
    number of such words, not the length of the text.
    """
    mostly_latin = len(_LATIN_LETTER_RE.findall(text)) > len(_OTHER_LETTER_RE.findall(text))
    anchors = _HOMOGLYPH_RE if mostly_latin else _LATIN_LETTER_RE
    reversed_text = text[::-1]
    length = len(text)
    pieces: list[str] = []
    done = 0  # text[:done] is already in pieces
    visited = 0  # words before this offset have been looked at
    count = 0
    for anchor in anchors.finditer(text):
        position = anchor.start()
        if position < visited:
            continue  # inside a word already visited
        end = _WORD_TAIL_RE.match(text, position).end()
        start = length - _WORD_TAIL_RE.match(reversed_text, length - position).end()
        visited = end
        word = text[start:end]
        folded = word.translate(_FOLD_TABLE)
        mixed = _LATIN_LETTER_RE.search(word) is not None
        all_lookalikes = _OTHER_LETTER_RE.search(folded) is None
        if folded != word and (mixed or (all_lookalikes and mostly_latin)):
            pieces.append(text[done:start])
            pieces.append(folded)
            count += sum(a != b for a, b in zip(word, folded, strict=True))
            done = end
    if not pieces:
        return text, 0
    pieces.append(text[done:])
    return "".join(pieces), count
