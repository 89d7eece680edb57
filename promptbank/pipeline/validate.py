"""Validation: one raw record (a dict from a reader, the API or a service) becomes a `ValidRecord`, or a one-line
reason why not ("line 7: text is longer than 20,000 characters (20,001)").

Field names: ours (`text, label, category, severity, tags, subcategory, attack_type, language, source, source_ref,
license`) and common aliases (`prompt`/`content`/`input`/`goal` for text, `type` for category, `lang`, `licence`,
... see `FIELD_ALIASES`). Values:

- `text`: required, valid UTF-8, 1 to 20,000 characters as stored (see `normalize.clean_text`) and not empty once
  normalized (a text of invisible characters only is empty);
- `label`: attack | benign | 1 | 0 | true | false (any case; JSON booleans and numbers too). Missing, it follows the
  category (benign category: benign, any other: attack); with neither, the record is rejected: guessing a label
  would put unlabelled traffic into the training data;
- `category`: ours, or a known alias, among them the names of the shared datasets (`injection` -> prompt_injection,
  `indirect_injection` -> prompt_injection with subcategory "indirect", `harmful` -> harmful_request). A benign label
  forces the benign category; an attack label with the benign category is a contradiction and rejected. Missing on
  an attack, the classify stage fills it in;
- `severity`: low | medium | high | critical; missing, the category's default (`choices.DEFAULT_SEVERITY`);
- `tags`: a list of strings or one comma-separated string; lower-cased, spaces to underscores;
- the other fields must fit their columns (so a long value is a rejected line, not a failed batch on PostgreSQL).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptbank.choices import Category, Label, Severity
from promptbank.pipeline.normalize import clean_text, has_invalid_unicode, normalize_text

MAX_TEXT_CHARS = 20_000
MAX_TAGS = 50
MAX_TAG_CHARS = 64

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "text": ("text", "prompt", "content", "input", "query", "question", "instruction", "message", "goal", "payload"),
    "label": ("label", "is_attack", "malicious", "is_malicious", "is_injection"),
    "category": ("category", "type", "attack_category", "kind"),
    "severity": ("severity", "risk", "risk_level"),
    "tags": ("tags", "keywords"),
    "subcategory": ("subcategory", "sub_category", "subtype"),
    "attack_type": ("attack_type", "technique", "attack_technique"),
    "language": ("language", "lang", "locale"),
    "source": ("source", "dataset", "origin"),
    "source_ref": ("source_ref", "ref", "reference", "url", "id"),
    "license": ("license", "licence"),
}
# Column sizes of `Prompt` (validated here so PostgreSQL never refuses a batch).
MAX_CHARS = {"subcategory": 64, "attack_type": 64, "language": 16, "source": 64, "source_ref": 500, "license": 64}

_LABELS = {
    "attack": Label.ATTACK,
    "1": Label.ATTACK,
    "true": Label.ATTACK,
    "benign": Label.BENIGN,
    "0": Label.BENIGN,
    "false": Label.BENIGN,
}
# alias -> (category, subcategory it implies)
CATEGORY_ALIASES: dict[str, tuple[str, str]] = {
    **{c: (c, "") for c in Category.values},
    "injection": (Category.PROMPT_INJECTION, ""),
    "direct_injection": (Category.PROMPT_INJECTION, "direct"),
    "indirect_injection": (Category.PROMPT_INJECTION, "indirect"),
    "indirect_prompt_injection": (Category.PROMPT_INJECTION, "indirect"),
    "jailbreaking": (Category.JAILBREAK, ""),
    "data_exfiltration": (Category.DATA_EXTRACTION, ""),
    "exfiltration": (Category.DATA_EXTRACTION, ""),
    "data_leak": (Category.DATA_EXTRACTION, ""),
    "data_leakage": (Category.DATA_EXTRACTION, ""),
    "pii_extraction": (Category.DATA_EXTRACTION, "pii"),
    "prompt_leak": (Category.SYSTEM_PROMPT_LEAK, ""),
    "prompt_leaking": (Category.SYSTEM_PROMPT_LEAK, ""),
    "prompt_extraction": (Category.SYSTEM_PROMPT_LEAK, ""),
    "system_prompt_extraction": (Category.SYSTEM_PROMPT_LEAK, ""),
    "system_prompt_leakage": (Category.SYSTEM_PROMPT_LEAK, ""),
    "obfuscation": (Category.ENCODING_OBFUSCATION, ""),
    "encoding": (Category.ENCODING_OBFUSCATION, ""),
    "harmful": (Category.HARMFUL_REQUEST, ""),
    "harmful_behavior": (Category.HARMFUL_REQUEST, ""),
    "harmful_behaviour": (Category.HARMFUL_REQUEST, ""),
    "harmful_content": (Category.HARMFUL_REQUEST, ""),
    "safe": (Category.BENIGN, ""),
    "normal": (Category.BENIGN, ""),
}
_KEY_RE = re.compile(r"[\s\-]+")


class Rejected(Exception):
    """A record the pipeline will not take; the message is the one-line reason (without the line number)."""


@dataclass
class ValidRecord:
    """A record that passed validation, normalized; `category` is "" until the classify stage fills it in."""

    line: int
    text: str
    normalized: str
    hash: str
    normalization_tags: tuple[str, ...]
    label: str
    category: str
    subcategory: str
    attack_type: str
    severity: str
    tags: list[str]
    language: str
    source: str
    source_ref: str
    license: str
    variant_of_id: uuid.UUID | None = None
    mutator: str = ""


def _pick(record: Mapping[str, Any], name: str) -> Any:
    for key in FIELD_ALIASES[name]:
        value = record.get(key)
        if value is not None and value != "":
            return value
    return None


def _string(record: Mapping[str, Any], name: str, default: str = "") -> str:
    value = _pick(record, name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Rejected(f"{name} must be a string")
    value = clean_text(str(value))
    if has_invalid_unicode(value):
        raise Rejected(f"{name} is not valid UTF-8")
    limit = MAX_CHARS.get(name)
    if limit and len(value) > limit:
        raise Rejected(f"{name} is longer than {limit} characters ({len(value):,})")
    return value


def _label(record: Mapping[str, Any]) -> str:
    value = _pick(record, "label")
    if value is None:
        return ""
    key = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if isinstance(value, float) and value in (0.0, 1.0):
        key = str(int(value))
    if key not in _LABELS:
        raise Rejected(f"label {str(value)[:40]!r} is not one of attack, benign, 1, 0, true, false")
    return _LABELS[key]


def category_key(value: str) -> str:
    return _KEY_RE.sub("_", value.strip().lower())


def _category(record: Mapping[str, Any]) -> tuple[str, str]:
    value = _pick(record, "category")
    if value is None:
        return "", ""
    if not isinstance(value, str):
        raise Rejected("category must be a string")
    mapped = CATEGORY_ALIASES.get(category_key(value))
    if mapped is None:
        raise Rejected(
            f"category {value[:40]!r} is not known (one of {', '.join(Category.values)}; "
            "or injection, indirect_injection, harmful)"
        )
    return mapped


def _severity(record: Mapping[str, Any]) -> str:
    value = _pick(record, "severity")
    if value is None:
        return ""
    key = str(value).strip().lower()
    if key not in Severity.values:
        raise Rejected(f"severity {str(value)[:40]!r} is not one of {', '.join(Severity.values)}")
    return key


def _tags(record: Mapping[str, Any]) -> list[str]:
    value = _pick(record, "tags")
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.replace(";", ",").split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise Rejected("tags must be a list of strings or a comma-separated string")
    tags: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise Rejected("tags must be a list of strings or a comma-separated string")
        tag = _KEY_RE.sub("_", clean_text(item).lower())
        if not tag:
            continue
        if has_invalid_unicode(tag):
            raise Rejected("tags are not valid UTF-8")
        if len(tag) > MAX_TAG_CHARS:
            raise Rejected(f"tag {tag[:20]!r}… is longer than {MAX_TAG_CHARS} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise Rejected(f"more than {MAX_TAGS} tags ({len(tags)})")
    return tags


def _text(record: Mapping[str, Any]) -> str:
    value = _pick(record, "text")
    if value is None:
        raise Rejected("text is missing or empty")
    if not isinstance(value, str):
        raise Rejected(f"text must be a string, not {type(value).__name__}")
    text = clean_text(value)
    if not text:
        raise Rejected("text is missing or empty")
    if has_invalid_unicode(text):
        raise Rejected("text is not valid UTF-8")
    if len(text) > MAX_TEXT_CHARS:
        raise Rejected(f"text is longer than {MAX_TEXT_CHARS:,} characters ({len(text):,})")
    return text


def validate_record(record: Any, *, line: int, default_source: str, default_license: str = "") -> ValidRecord:
    """Check and normalize one record; raises `Rejected` with the reason (without the line number)."""
    if not isinstance(record, Mapping):
        raise Rejected(f"expected an object with a text, got {type(record).__name__}")
    text = _text(record)
    normalized = normalize_text(text)
    if not normalized.normalized:
        raise Rejected("text is empty once invisible characters are removed")
    label = _label(record)
    category, implied_subcategory = _category(record)
    if not label:
        if not category:
            raise Rejected("label is missing (attack, benign, 1, 0, true or false)")
        label = Label.BENIGN if category == Category.BENIGN else Label.ATTACK
    if label == Label.BENIGN:
        category = Category.BENIGN
    elif category == Category.BENIGN:
        raise Rejected("category benign contradicts label attack")
    return ValidRecord(
        line=line,
        text=text,
        normalized=normalized.normalized,
        hash=normalized.hash,
        normalization_tags=normalized.tags,
        label=label,
        category=category,
        subcategory=_string(record, "subcategory") or implied_subcategory,
        attack_type=_string(record, "attack_type"),
        severity=_severity(record),
        tags=_tags(record),
        language=_string(record, "language").lower(),
        source=_string(record, "source") or default_source,
        source_ref=_string(record, "source_ref"),
        license=_string(record, "license") or default_license,
    )
