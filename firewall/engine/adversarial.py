"""Adversarial suffixes: the "token salad" that optimization attacks (GCG and its kin) append to a harmful request.

An optimized suffix is chosen token by token to push the model into answering ("Sure, here is ..."), not to be
read, so it looks like no text a person writes: words glued to brackets and code punctuation, brackets that open and
close in the wrong order, a stray "Sure" or "Here". The request in front of it may be phrased so that no lexical model
has seen it (the suffix makes up for it), so the suffix itself is the evidence. Perplexity filters catch it too but
flag non-English and code just as often; this check is structural, per line:

- the line's brackets are crossed: a `]` or `}` closes a `(` or `[` that is not the last one open (a closer with no
  opener counts too), at least once, with at least three crossed or unclosed brackets in all;
- at least two tokens glue letters to two or more code characters (``({[HTMLsvg``, ``Hed`](_{(Location``);
- and the line still carries at least three plain words (the request, or the words salad mixes in).

Code puts many brackets and glued tokens on a line but keeps them balanced; prose, markdown, emoticons and lists don't
glue. On the shipped bank's 4,186 benign prompts (code, maths, LaTeX-like equations, JSON, other languages) and the
held-out benchmark's 1,366, no line qualifies. Linear in the input: one regex pass per line for brackets, a
counter per bracket type instead of searching the stack (no cap: a balanced prefix must not hide a salad).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from firewall.engine.normalize import normalize
from firewall.engine.signatures import MAX_EVIDENCE_CHARS
from firewall.engine.types import Candidate, Finding, Severity, Span, ThreatType

DETECTOR = "adversarial_suffix"
RULE_ID = "AS-001"

_BRACKETS = re.compile(r"[()\[\]{}]")
_WIDE_BRACKETS = re.compile(r"[()\[\]{}\uff08\uff09\uff3b\uff3d\uff5b\uff5d]")  # and their full-width forms
_CODE_CHARS = re.compile(r"[()\[\]{}\\|`^$~<>=@#*_]")
_LETTER = re.compile(r"[A-Za-z]")
_TOKEN = re.compile(r"\S+")
_BRACKETED_WORD = re.compile(r"[(\[{]?[\w'-]+[)\]}]?[.,;:!?]*")
_PLAIN_WORD = re.compile(r"[A-Za-z]+[,.;:!?]?")
_OPENER_OF = {")": "(", "]": "[", "}": "{"}


def crossed_brackets(brackets: Iterable[str]) -> tuple[int, int]:
    """(crossed, unclosed) for a sequence of bracket characters.

    Crossed: a closer whose opener is not the innermost open bracket (the inner ones are then abandoned and counted
    too), or a closer with no opener at all. Unclosed: openers left at the end.
    """
    stack: list[str] = []
    open_count = {"(": 0, "[": 0, "{": 0}
    crossed = 0
    for ch in brackets:
        if ch in open_count:
            stack.append(ch)
            open_count[ch] += 1
            continue
        opener = _OPENER_OF[ch]
        if not open_count[opener]:
            crossed += 1
            continue
        while stack[-1] != opener:  # linear overall: each opener is popped at most once
            open_count[stack.pop()] -= 1
            crossed += 1
        stack.pop()
        open_count[opener] -= 1
    return crossed, len(stack)


def _glued(token: str) -> bool:
    """Letters glued to two or more code characters; a word merely in brackets ("(really)", "[none]") is prose."""
    return (
        "://" not in token
        and len(_CODE_CHARS.findall(token)) >= 2
        and _LETTER.search(token) is not None
        and _BRACKETED_WORD.fullmatch(token) is None
    )


def _suffix_in_line(line: str) -> int | None:
    """Where the salad starts in `line`, or None when the line does not qualify. The salad starts at the first glued
    token, widened back over the tokens before it that are not plain words (``]){`` in ``quietly ]){ Sure,here``)."""
    brackets = _BRACKETS.findall(line)
    if len(brackets) < 3:
        return None
    crossed, unclosed = crossed_brackets(brackets)
    if crossed < 1 or crossed + unclosed < 3:
        return None
    tokens = list(_TOKEN.finditer(line))
    glued = [i for i, token in enumerate(tokens) if _glued(token.group())]
    plain = [_PLAIN_WORD.fullmatch(token.group()) is not None for token in tokens]
    if len(glued) < 2 or sum(plain) < 3:
        return None
    first = glued[0]
    while first > 0 and not plain[first - 1]:
        first -= 1
    return tokens[first].start()


def find_suffix(text: str, normalized_text: str | None = None) -> tuple[str, str, Span | None] | None:
    """(salad, view, span) for the first line of `text` that reads as a request with an adversarial suffix, or None.

    Lines, not the whole text: code that is balanced over a text is rarely balanced over an arbitrary stretch of it.
    A line is judged normalized (NFKC, invisible characters, homoglyphs), so a zero-width or look-alike variant of a
    suffix is judged as the suffix. The span indexes `text` (view "original") when the line needed no normalizing,
    or `normalized_text` (view "normalized") for a one-line text judged through it; else there is none.
    """
    if "\n" not in text and normalized_text is not None:  # the engine's normalized text is this one line
        if len(_WIDE_BRACKETS.findall(text)) < 3:
            return None
        at = _suffix_in_line(normalized_text)
        if at is None:
            return None
        view, judged = ("original", text) if normalized_text == text else ("normalized", normalized_text)
        return judged[at:], view, Span(at, len(judged))
    offset = 0
    for raw in text.split("\n"):
        line_start, offset = offset, offset + len(raw) + 1
        if len(_WIDE_BRACKETS.findall(raw)) < 3:  # the cheap gate, before any normalizing
            continue
        line = normalize(raw).text
        at = _suffix_in_line(line)
        if at is None:
            continue
        if line == raw.rstrip("\r"):
            return line[at:], "original", Span(line_start + at, line_start + len(line))
        return line[at:], "normalized", None
    return None


def scan(text: str, candidates: Iterable[Candidate], normalized_text: str | None = None) -> list[Finding]:
    """One finding at most: on the input's own lines first, then on each decoded payload (normalizing has joined a
    payload's lines, so it is judged whole)."""
    found = find_suffix(text, normalized_text)
    if found is not None:
        salad, view, span = found
        return [_finding(salad, view, [span] if span is not None else [])]
    for candidate in candidates:
        if candidate.view == "normalized":
            continue
        at = _suffix_in_line(candidate.text)
        if at is not None:
            return [_finding(candidate.text[at:], candidate.view, [])]
    return []


def _finding(salad: str, view: str, spans: list[Span]) -> Finding:
    evidence = salad.strip()[:MAX_EVIDENCE_CHARS]
    where = "" if view in ("original", "normalized") else f" in {view}"
    return Finding(
        detector=DETECTOR,
        score=0.85,
        threat_type=ThreatType.JAILBREAK,
        severity=Severity.HIGH,
        evidence=[f"adversarial suffix{where}: {evidence}"],
        spans=spans,
        rule_id=RULE_ID,
        view=view,
    )
