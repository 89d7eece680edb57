"""Tags: the encodings a prompt carries, the attack techniques it uses, and its language.

Everything here is a light, deterministic heuristic with no downloads: regular expressions for techniques, decoding
checks for encodings (a run of base64 counts only if it decodes to readable text), and a language guess from the
writing system and, for Latin script, from stop-word counts. The tags feed the bank's filters, the red-team suite
selection and the quality score; a curator can always change them.

Tag vocabulary:
- encodings: `base64`, `hex`, `rot13`, `url_encoding`, `leetspeak`, `unicode_escapes`, `homoglyphs` (plus the
  `invisible_chars`, `bidi_controls`, `unicode_tags` that normalization records);
- techniques: `ignore_previous`, `role_play`, `dan`, `developer_mode`, `hypothetical`, `payload_splitting`,
  `obfuscation`, `prompt_leak`, `refusal_suppression`, `translation`, `template`.

Speed matters (every imported prompt is tagged): each technique has trigger words, one of which every match of its
pattern contains, so the pattern only runs on the few prompts that have one (a set intersection with the prompt's
words); a long prompt is searched only in windows around the triggers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

ENCODING_TAGS = (
    "base64",
    "hex",
    "rot13",
    "url_encoding",
    "leetspeak",
    "unicode_escapes",
    "homoglyphs",
    "invisible_chars",
    "bidi_controls",
    "unicode_tags",
)
_ENCODINGS = frozenset(ENCODING_TAGS)


@dataclass(frozen=True)
class Technique:
    """A technique tag: its pattern, and the words (or characters) one of which every match contains.

    Patterns run on the lower-cased text without IGNORECASE and without a leading `\\b` (both defeat the regular
    expression engine's fast scan for the first characters, and cost half the time); a match must start at a word
    boundary, which `_search` checks. `cased` patterns (DAN, the persona, not Dan) run on the text as it is.
    """

    name: str
    pattern: re.Pattern[str]
    triggers: frozenset[str]
    trigger_chars: str = ""
    cased: bool = False


def _technique(name: str, triggers: str, pattern: str, *, flags: int = 0, **options: Any) -> Technique:
    return Technique(name, re.compile(pattern, flags), frozenset(triggers.split()), **options)


TECHNIQUES: list[Technique] = [
    _technique(
        "ignore_previous",
        "ignore disregard forget skip override bypass",
        r"(ignore|disregard|forget|skip|override|bypass)\b[^.\n]{0,40}?"
        r"\b(previous|prior|above|earlier|preceding|all|any|your|these|those|initial|original|system)\b"
        r"[^.\n]{0,30}?\b(instructions?|prompts?|rules|directions|guidelines|directives|commands?|context)\b",
    ),
    _technique(
        "role_play",
        "pretend imagine act acting now roleplay role character play will",
        r"(pretend|imagine) (that )?(you are|you're|to be)\b|act(ing)? as (an?|my|the|if)\b|you are now\b"
        r"|from now on,? you\b|role ?-?play|(stay|remain|break) in character\b|play the (role|part)\b"
        r"|you will (now )?(be|play|act)\b",
    ),
    _technique("dan", "dan stan dude anything", r"(DAN|STAN|DUDE|ANTI-DAN)\b|[Dd]o [Aa]nything [Nn]ow\b", cased=True),
    _technique(
        "developer_mode",
        "mode",
        r"(developer|dev|god|sudo|debug|admin|maintenance|unrestricted|unfiltered|jailbreak) mode\b",
    ),
    _technique(
        "hypothetical",
        "hypothetical hypothetically experiment fictional story novel movie world universe screenplay book game "
        "scenario",
        r"hypothetical(ly)?\b|thought experiment\b|fictional\b|in a (story|novel|movie|world|universe) where\b"
        r"|for (a|my) (story|novel|movie|screenplay|book|game)\b|imagine (a|an) (world|scenario)\b",
    ),
    _technique(
        "payload_splitting",
        "concatenate combine join merge part piece",
        # Each alternative starts with a character or word of its own, so the engine can skip ahead to it:
        # `x = "..."; y = "..."`, `a + b + c`, "concatenate the strings", "part 1 ... part 2".
        r"=\s*[\"'][^\"'\n]{1,200}[\"']\s*[,;\n]?\s*[a-z]\w{0,3}\s*=\s*[\"']"
        r"|\+\s*[a-z]\w{0,3}\s*\+\s*[a-z]"
        r"|(concatenate|combine|join|merge) (the |these |both |all )?(strings|parts|variables|pieces|halves|words)"
        r"|(part|piece) ?(1|one|a)\b.{0,300}\b(part|piece) ?(2|two|b)\b",
        flags=re.DOTALL,
        trigger_chars="=+",
    ),
    _technique(
        "prompt_leak",
        "prompt instructions message text words",
        r"(system|initial|original|hidden|secret) (prompt|instructions|message)\b"
        r"|(repeat|print|reveal|show|output|display)\b[^.\n]{0,30}\b(instructions|prompt|text|words) (above|before)\b",
    ),
    _technique(
        "refusal_suppression",
        "refuse decline apologize apologise say without moral ethical content",
        r"(never|don't|do not|must not|cannot|can't) (refuse|decline|apologi[sz]e|say no)\b"
        r"|without (any )?(warnings?|disclaimers?|caveats?|censorship|restrictions|filters?)\b"
        r"|no (moral|ethical|content) (guidelines|restrictions|limits|policies)\b",
    ),
    _technique(
        "translation",
        "translate",
        r"translate\b[^.\n]{0,60}\b(into|to|from) [a-z]+\b",
    ),
    _technique(
        "template",
        "insert",
        r"\[insert prompt here\]|\{\{\s*(prompt|input|query|payload)\s*\}\}",
        trigger_chars="{",
    ),
]
_OBFUSCATION_WORDS = frozenset(
    (
        *("decode", "decoded", "decoding", "decrypt", "decrypted", "decipher", "unscramble", "encode", "encoded"),
        *("encoding", "encrypt", "encrypted", "obfuscated", "obfuscation", "cipher", "base64", "rot13", "hexadecimal"),
    )
)

_WORD = re.compile(r"[^\W_]+|[@$]")  # words of letters and digits (and the symbols leetspeak uses)
_LEET_CHAR = re.compile(r"[0-9@$]")
_PUNCTUATION = ".,;:!?\"'()[]{}<>*_`~\u00ab\u00bb\u201c\u201d\u2018\u2019\u2026"
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
# One long run of hex digits, or eight or more pairs separated by spaces, colons, commas or dashes.
_HEX = re.compile(r"[0-9A-Fa-f]{16,}|[0-9A-Fa-f]{2}(?:[ :,-]+[0-9A-Fa-f]{2}){7,}")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")
_URL_ENCODED = re.compile(r"(?:%[0-9A-Fa-f]{2}){3,}")
_UNICODE_ESCAPES = re.compile(r"(?:\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|&#x?[0-9A-Fa-f]{2,6};)")
_LEET_MAP = str.maketrans("0134578@$", "oieastbas")
_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM"
)
_MIXED_SCRIPT = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[\u0370-\u03ff\u0400-\u04ff])\w+\b")
_GREEK_OR_CYRILLIC = re.compile(r"[\u0370-\u03ff\u0400-\u04ff]")
_FULLWIDTH = re.compile(r"[\uff01-\uff5e]")
_DIGIT = re.compile(r"\d")
_WINDOW = 500  # longer than any technique pattern's match
_MAX_WINDOWS = 24


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Common English words (and a few attack words) for the rot13 and leetspeak checks.
_COMMON = _words(
    """the and you that was for are with his they this have from one had word but not what all were when your can
    said there use each which she how their will other about out many then them these some her would make like him
    into time has look two more write see number way could people than first water been call who its now find long
    down day did get come made may part over new sound take only little work know place year live back give most
    very after thing our just name good sentence man think say great where help through much before line right too
    mean old any same tell boy follow came want show also around form three small set put end does another well
    large must big even such because turn here why ask went men read need land different home move try kind hand
    picture again change off play spell air away animal house point page letter mother answer found study still
    learn should america world ignore previous instructions instruction prompt system password secret reveal hack
    hacker bomb kill attack admin access delete steal drugs weapon rules mode developer jailbreak malware virus
    tell print output say please now all everything above below answer question restrictions filter"""
)

_LATIN_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words(
        """the and is are was were of to in that it for on with as this be have has not you your what how can will
        would should please me my we they from an or do does which who"""
    ),
    "es": _words(
        """el la los las de que y en un una es por con para no se lo como más pero sus le ya o este sí porque esta
        entre cuando muy sin sobre también me hasta hay donde quien desde todo nos durante"""
    ),
    "fr": _words(
        """le la les de des du et est un une que qui dans pour pas sur au avec ce il elle nous vous je tu ne se son
        sa ses mais ou comme tout plus par aux été être cette"""
    ),
    "de": _words(
        """der die das und ist nicht ein eine zu den mit sich des auf für im dem von sie es ich du wir ihr auch an
        als nach wie bei oder aber wenn noch sind war werden"""
    ),
    "it": _words(
        """il lo la gli le di che e è un una per non con del della sono mi si ma come questo anche nel alla tutto più
        io tu lui lei noi voi essere ho hai ha"""
    ),
    "pt": _words(
        """o a os as de que e é um uma para com não do da em por se mais como mas foi ao ele ela das dos tem à seu
        sua ou quando muito nos já eu também só pelo pela isso"""
    ),
    "nl": _words(
        """de het een en van ik te dat die in is niet zijn op aan met als voor er maar om hem dan zou of wat mijn men
        dit zo door over ze zich bij ook tot je"""
    ),
}

_STOPWORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _lang, _stop in _LATIN_STOPWORDS.items():
    for _word in _stop:
        _STOPWORD_LANGUAGES[_word] = (*_STOPWORD_LANGUAGES.get(_word, ()), _lang)

# (language, compiled character class) for writing systems that identify a language (or a small group) by themselves.
_SCRIPTS = [
    ("hangul", re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")),
    ("kana", re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")),
    ("han", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff\u0750-\u077f]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]")),
]
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_UKRAINIAN = re.compile(r"[іїєґІЇЄҐ]")
_PERSIAN = re.compile(r"[پچژگکی]")
_LANGUAGE_SAMPLE = 2000


def _printable_share(data: bytes) -> float:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return 0.0
    if not decoded:
        return 0.0
    return sum(ch.isprintable() or ch in "\n\r\t" for ch in decoded) / len(decoded)


def _has_base64(text: str) -> bool:
    checked = 0
    for token in text.split():
        if len(token) < 16:
            continue
        for match in _BASE64_TOKEN.finditer(token):
            run = match.group()
            # Long plain words are base64 characters too: demand a digit, + or /, or mixed case inside the run.
            if not re.search(r"[0-9+/]", run) and not re.search(r"[a-z][A-Z]|[A-Z]{2}[a-z]", run[1:]):
                continue
            checked += 1
            bare = run.rstrip("=")
            try:
                data = base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(data) >= 8 and _printable_share(data) >= 0.9:
                return True
            if checked >= 20:
                return False
    return False


def _readable_hex(digits: str) -> bool:
    if len(digits) % 2 or len(digits) < 16:
        return False
    try:
        return _printable_share(bytes.fromhex(digits)) >= 0.9
    except ValueError:
        return False


def _has_hex(text: str) -> bool:
    """Hex-encoded text: one long run ("69676e6f7265..."), eight or more spaced pairs, or `\\x` escapes."""
    for match in _HEX.finditer(text):
        start, end = match.span()
        if (start and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
            continue  # part of a longer word
        if _readable_hex(re.sub(r"[ :,-]", "", match.group())):
            return True
    if "\\x" in text:
        for match in _HEX_ESCAPES.finditer(text):
            if _readable_hex(match.group().replace("\\x", "")):
                return True
    return False


def _has_rot13(words: list[str]) -> bool:
    """Mostly gibberish that turns into common words under rot13 ("vtaber nyy cerivbhf vafgehpgvbaf")."""
    candidates = [w for w in words if len(w) >= 3 and w.isascii() and w.isalpha()]
    if len(candidates) < 3:
        return False
    direct = sum(w in _COMMON for w in candidates)
    if direct * 2 > len(candidates):
        return False  # mostly plain English: whatever rot13 is in there is not most of it
    rotated = sum(w in _COMMON for w in " ".join(candidates).translate(_ROT13).split())
    return rotated >= 3 and rotated > direct * 0.5


def _has_leetspeak(lower: str) -> bool:
    """One word that reads as a common (or attack) word once its digits and symbols are read as letters: "1gn0r3",
    "h4ck", "p@ssword". Ordinary tokens mixing letters and digits ("mp3", "b2b", "covid19") do not count. `lower` is
    lower-cased with single spaces; only the words around its digits, @ and $ are looked at."""
    starts: set[int] = set()
    for match in _LEET_CHAR.finditer(lower):
        start = lower.rfind(" ", 0, match.start()) + 1
        if start in starts:
            continue
        starts.add(start)
        if len(starts) > 200:
            return False
        end = lower.find(" ", match.start())
        word = lower[start : len(lower) if end == -1 else end].strip(_PUNCTUATION)
        readable = len(word) >= 3 and not word.isdigit() and any(c.isalpha() for c in word)
        if readable and word.translate(_LEET_MAP) in _COMMON:
            return True
    return False


def encoding_tags(text: str, *, lower: str | None = None, words: list[str] | None = None) -> set[str]:
    """Encodings present in the (stored) text. `lower`: its normalized text lower-cased, and `words`: the words of
    that, when the caller has them."""
    if lower is None:
        lower = " ".join(text.split()).lower()
    if words is None:
        words = _WORD.findall(lower)
    tags: set[str] = set()
    # Readable text in hex always has digits (its bytes are 0x20-0x7e), and leetspeak has digits or @ and $: most
    # prompts have none, and skip both checks.
    digits = _DIGIT.search(text) is not None
    if _has_base64(text):
        tags.add("base64")
    if digits and _has_hex(text):
        tags.add("hex")
    if "%" in text and _URL_ENCODED.search(text):
        tags.add("url_encoding")
    if ("\\u" in text or "\\U" in text or "&#" in text) and len(_UNICODE_ESCAPES.findall(text)) >= 2:
        tags.add("unicode_escapes")
    if (digits or "@" in text or "$" in text) and _has_leetspeak(lower):
        tags.add("leetspeak")
    if _has_rot13(words[:200]):
        tags.add("rot13")
    if not text.isascii() and (
        (_GREEK_OR_CYRILLIC.search(text) and _MIXED_SCRIPT.search(text)) or _FULLWIDTH.search(text)
    ):
        tags.add("homoglyphs")
    return tags


def _starts_a_word(text: str, pattern: re.Pattern[str], start: int = 0, end: int | None = None) -> bool:
    """Whether `pattern` matches in `text[start:end]`, at a word's start when the match starts with a letter."""
    for match in pattern.finditer(text, start, len(text) if end is None else end):
        at = match.start()
        if at == 0 or not text[at].isalnum() or not text[at - 1].isalnum():
            return True
    return False


def _search(technique: Technique, text: str, present: frozenset[str] | set[str]) -> bool:
    """Whether the technique's pattern matches `text`; a long text only in windows around its triggers (every match
    contains one, and none is longer than `_WINDOW`)."""
    pattern = technique.pattern
    if len(text) <= 4 * _WINDOW or technique.trigger_chars:
        return _starts_a_word(text, pattern)
    positions: list[int] = []
    lower = text.lower() if technique.cased else text
    for word in present:
        at = lower.find(word)
        while at != -1 and len(positions) <= _MAX_WINDOWS:
            positions.append(at)
            at = lower.find(word, at + 1)
    if len(positions) > _MAX_WINDOWS or len(lower) != len(text):
        return _starts_a_word(text, pattern)
    end = -1
    for at in sorted(positions):
        if at < end - _WINDOW:
            continue  # inside the window just searched
        # Windows start and end on a space, so word boundaries at their edges are the text's own.
        start = max(0, text.rfind(" ", 0, max(0, at - _WINDOW)))
        end = text.find(" ", at + _WINDOW)
        end = len(text) if end == -1 else end
        if _starts_a_word(text, pattern, start, end):
            return True
    return False


def technique_tags(normalized: str, *, lower: str | None = None, word_set: set[str] | None = None) -> set[str]:
    """Attack techniques in the normalized text."""
    if lower is None:
        lower = normalized.lower()
    if word_set is None:
        word_set = set(_WORD.findall(lower))
    found = set()
    for technique in TECHNIQUES:
        present = technique.triggers & word_set
        if not present and not any(c in lower for c in technique.trigger_chars):
            continue
        if _search(technique, normalized if technique.cased else lower, present):
            found.add(technique.name)
    return found


def detect_language(text: str, *, words: list[str] | None = None) -> str:
    """ISO 639-1 code of the text's language, or "" when the guess is not reliable (short or mixed text)."""
    sample = text[:_LANGUAGE_SAMPLE]
    if not sample.isascii():
        counts = {name: len(pattern.findall(sample)) for name, pattern in _SCRIPTS}
        latin = len(_LATIN.findall(sample))
        letters = latin + sum(counts.values())
        if letters:
            cjk = counts["han"] + counts["kana"] + counts["hangul"]
            if cjk / letters >= 0.3:
                if counts["hangul"] >= max(counts["han"], counts["kana"]):
                    return "ko"
                return "ja" if counts["kana"] >= 0.05 * cjk else "zh"
            others = [(n, c) for n, c in counts.items() if n not in ("han", "kana", "hangul")]
            script, count = max(others, key=lambda item: item[1])
            if count / letters >= 0.5:
                if script == "cyrillic":
                    return "uk" if _UKRAINIAN.search(sample) else "ru"
                if script == "arabic":
                    return "fa" if len(_PERSIAN.findall(sample)) >= 3 else "ar"
                return {"greek": "el", "hebrew": "he", "devanagari": "hi", "thai": "th"}[script]
    words = (words if words is not None else _WORD.findall(sample.lower()))[:250]
    if not words:
        return ""
    scores = dict.fromkeys(_LATIN_STOPWORDS, 0)
    for word, count in Counter(words).items():
        for lang in _STOPWORD_LANGUAGES.get(word, ()):
            scores[lang] += count
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    best_lang, best = ranked[0]
    second = ranked[1][1]
    if best < 2 or best < 1.3 * second or best < 0.08 * len(words):
        return ""
    return best_lang


def tag(text: str, normalized: str, *, normalization_tags: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """(sorted tags, language) of a prompt: encodings in the stored text, techniques in the normalized text."""
    lower = normalized.lower()
    words = _WORD.findall(lower)
    word_set = set(words)
    tags = encoding_tags(text, lower=lower, words=words) | technique_tags(normalized, lower=lower, word_set=word_set)
    tags |= set(normalization_tags)
    if tags & _ENCODINGS or not _OBFUSCATION_WORDS.isdisjoint(word_set):
        tags.add("obfuscation")
    return sorted(tags), detect_language(normalized, words=words)
