"""Filling in a missing category: deterministic keyword rules, each with a weight, scored per attack category.

Only attack prompts are classified (a benign label means the benign category). Each category has a list of regular
expressions with weights; a prompt's score for a category is the sum of the weights of its rules that match (each rule
counts once). The category with the highest score wins (ties go to the order of `RULES`). Confidence:

    confidence = top / (top + runner_up + 1) * (1 - exp(-top / 2))

so one weak hit gives little confidence (weight 1: 0.20), several strong hits for one category much more (weight 6
and nothing else: 0.81), and a close second category pulls it down. A prompt no rule matches is a prompt injection
with confidence 0.1 (the broadest attack category: text meant to override the model's instructions).

The rules are a first guess a curator corrects; the firewall's trained classifier (issue 4) may replace them.
"""

from __future__ import annotations

import math
import re

from promptbank.choices import Category

# (category, weight, pattern). Patterns run on the normalized text, case-insensitively (`(?-i:...)` marks the parts
# that are not: "DAN" the persona, not "Dan" the name).
PI, JB, DX, SL, EO, HR = (
    Category.PROMPT_INJECTION,
    Category.JAILBREAK,
    Category.DATA_EXTRACTION,
    Category.SYSTEM_PROMPT_LEAK,
    Category.ENCODING_OBFUSCATION,
    Category.HARMFUL_REQUEST,
)
RULES: list[tuple[str, float, str]] = [
    # Prompt injection: overriding the instructions the model was given.
    (
        PI,
        3,
        r"\b(ignore|disregard|forget|skip|override)\b.{0,40}\b(previous|prior|above|earlier|preceding|all|any|your|the)"
        r"\b.{0,30}\b(instructions?|prompts?|rules|directions|guidelines|context|commands?)\b",
    ),
    (PI, 2, r"\b(new|updated|real|actual|following) instructions?\b"),
    (PI, 2, r"\b(instead|rather),? (say|print|output|write|respond with|reply with)\b"),
    (PI, 1, r"\b(just|only) (say|print|output|write)\b"),
    (PI, 2, r"\b(stop|end) (of )?(the )?(previous )?(task|conversation|instructions)\b"),
    (PI, 2, r"(^|\s)(system|assistant)\s*:|<\|?(system|im_start)\|?>|\[/?inst\]"),
    (PI, 1, r"\bwhen you (read|see|process) this\b|\bif you are an? (ai|llm|assistant|language model)\b"),
    # Jailbreak: talking the model out of its rules (personas, modes, fiction).
    (JB, 4, r"(?-i:\b(DAN|STAN|DUDE|AIM)\b)|\bdo anything now\b|\bjailbr(eak|oken)\b|\bmachiavellian\b"),
    (JB, 3, r"\b(developer|dev|god|sudo|unrestricted|unfiltered|evil|opposite) mode\b"),
    (
        JB,
        2,
        r"\b(pretend|imagine|act as if) (that )?(you are|you're|to be)\b|\bact as (an?|my)\b|\byou are now\b"
        r"|\bfrom now on,? you\b",
    ),
    (JB, 2, r"\b(role ?-?play|stay in character|break character|in character)\b"),
    (
        JB,
        3,
        r"\b(no|without|free of|free from|not bound by|ignore) (any )?(moral|ethical|content|safety|openai)? ?"
        r"(restrictions|limits|limitations|filters|guidelines|policies|rules|censorship)\b",
    ),
    (JB, 2, r"\b(never|don't|do not|cannot|can't) (refuse|decline|say no|apologi[sz]e|warn)\b"),
    (
        JB,
        1,
        r"\bhypothetical(ly)?\b|\bfictional (world|story|scenario|universe)\b|\bfor a (story|novel|movie|screenplay)\b",
    ),
    (JB, 2, r"\[insert prompt here\]"),
    # Data extraction: getting secrets or personal data out of the model or its tools.
    (DX, 3, r"\b(passwords?|passcodes?|credentials|api[ _-]?keys?|secret keys?|access tokens?|private keys?)\b"),
    (DX, 3, r"\b(credit card|social security|ssn|bank account|home address|phone numbers?|email addresses)\b"),
    (
        DX,
        2,
        r"\b(training data|personal (data|information)|user (data|records)|customer (data|records)|database"
        r"|confidential)\b",
    ),
    (DX, 2, r"\b(exfiltrat\w*|dump|leak|extract|send (it|them|this|the data) to)\b"),
    (DX, 1, r"https?://\S+\?\S*=|!\[[^\]]*\]\(https?://"),
    # System-prompt leak: getting the model to reveal its own instructions.
    (SL, 4, r"\b(system|initial|original|hidden|secret|pre-?) ?prompt\b|\bsystem (message|instructions)\b"),
    (
        SL,
        3,
        r"\b(repeat|print|show|reveal|output|tell me|display|spell out) (me )?(the |your |all )?"
        r"(words|text|instructions|everything|prompt|message)s? "
        r"(above|before|you were given|at the (start|beginning))\b",
    ),
    (SL, 3, r"\bwhat (were|are) (your|the) (initial |original )?instructions\b|\bwhat (were you|have you been) told\b"),
    (SL, 2, r"\b(your|the) (rules|instructions|guidelines|configuration) (verbatim|word for word|exactly)\b"),
    # Encoding and obfuscation: the payload is hidden from filters.
    (
        EO,
        3,
        r"\b(base64|base-64|rot13|rot-13|hexadecimal|hex[- ]encoded|caesar cipher|morse code|leetspeak"
        r"|binary code)\b",
    ),
    (EO, 2, r"\b(decode|decrypt|decipher|unscramble|reverse) (this|the following|it|these)\b"),
    (EO, 2, r"[A-Za-z0-9+/]{24,}={0,2}"),
    (EO, 2, r"(?:\\x[0-9a-f]{2}){4,}|(?:%[0-9a-f]{2}){4,}|(?:\\u[0-9a-f]{4}){3,}"),
    # Harmful request: the payload itself asks for dangerous help.
    (HR, 3, r"\b(bomb|explosives?|detonat\w*|nerve agent|bioweapon|chemical weapon|ricin|sarin|anthrax|napalm)\b"),
    (
        HR,
        3,
        r"\b(meth(amphetamine)?|cocaine|heroin|fentanyl)\b.{0,40}\b(make|cook|synthesi[sz]e|produce|manufacture"
        r"|buy)\b|\b(make|cook|synthesi[sz]e|produce|manufacture)\b.{0,40}\b(meth(amphetamine)?|cocaine|heroin"
        r"|fentanyl|drugs)\b",
    ),
    (HR, 2, r"\b(kill|murder|poison|assassinate|torture|kidnap|stalk|harm|hurt)\b"),
    (HR, 2, r"\b(malware|ransomware|keylogger|virus|trojan|botnet|exploit|phishing|ddos)\b"),
    (HR, 2, r"\b(steal|shoplift|launder|counterfeit|fraud|scam|blackmail|extort)\w*\b"),
    (HR, 2, r"\b(hack|break) into\b|\bbypass (the )?(security|authentication|paywall)\b"),
    (HR, 1, r"\b(weapons?|guns?|firearms?|suicide|self-harm|racist|hate speech)\b"),
    (
        HR,
        1,
        r"^(write|give|provide|create|explain|describe|develop|outline)\b.{0,60}\b(how to|instructions|tutorial"
        r"|guide|step-by-step)\b",
    ),
]

_COMPILED = [(category, weight, re.compile(pattern, re.IGNORECASE)) for category, weight, pattern in RULES]
_ORDER = {category: i for i, category in enumerate(dict.fromkeys(c for c, _, _ in RULES))}
FALLBACK = (Category.PROMPT_INJECTION, 0.1)


def category_scores(text: str) -> dict[str, float]:
    """The rule score of every attack category that any rule matched."""
    scores: dict[str, float] = {}
    for category, weight, pattern in _COMPILED:
        if pattern.search(text):
            scores[category] = scores.get(category, 0.0) + weight
    return scores


def classify(text: str, *, label: str = "attack") -> tuple[str, float]:
    """(category, confidence 0-1) for a prompt whose source gave no category. `text` is the normalized text."""
    if label == "benign":
        return Category.BENIGN, 1.0
    scores = category_scores(text)
    if not scores:
        return FALLBACK
    ranked = sorted(scores.items(), key=lambda item: (-item[1], _ORDER[item[0]]))
    top = ranked[0][1]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    confidence = top / (top + runner_up + 1) * (1 - math.exp(-top / 2))
    return ranked[0][0], round(confidence, 3)
