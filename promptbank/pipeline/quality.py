"""Quality score, 0 to 1: how useful a prompt is to the bank. Sorting and suite selection prefer high scores; nothing
is rejected for a low one.

    quality = 0.25 * length + 0.25 * specificity + 0.30 * novelty + 0.20 * confidence      (rounded to 3 places)

- length: 0 at 8 characters or fewer, rising with the logarithm of the length to 1 at 200 characters, 1 up to
  8,000 characters, then easing to 0.7 at the 20,000 limit (very long prompts are mostly padding and cost tokens);
- specificity: distinct words (1 at 20 or more, so a bare "hi" scores low) times the share of letters among the
  non-space characters (0.5 weight, so a base64 or emoji payload is not zeroed out: it can be a real attack);
- novelty: 1 - the similarity to the closest prompt already in the bank (or earlier in the same import), as the
  dedup stage measured it; 1 when no prompt came near (no LSH candidate with an estimated similarity of 0.5);
- confidence: how sure the label and category are: 1 when the source gave them, the classifier's confidence when
  the pipeline filled the category in.
"""

from __future__ import annotations

import math
import re

_NOT_LETTER = re.compile(r"[\W\d_]+")
WEIGHTS = {"length": 0.25, "specificity": 0.25, "novelty": 0.30, "confidence": 0.20}


def length_score(n: int) -> float:
    if n <= 8:
        return 0.0
    if n < 200:
        return math.log(n / 8) / math.log(200 / 8)
    if n <= 8000:
        return 1.0
    return max(0.7, 1.0 - 0.3 * (n - 8000) / 12000)


def specificity_score(normalized: str) -> float:
    words = normalized.casefold().split()
    if not words:
        return 0.0
    distinct = min(1.0, len(set(words)) / 20)
    visible = normalized[:4000].replace(" ", "")  # normalized text has single spaces only
    letters = len(_NOT_LETTER.sub("", visible)) / len(visible) if visible else 0.0
    return distinct * (0.5 + 0.5 * letters)


def quality_score(*, text: str, normalized: str, max_similarity: float, confidence: float) -> float:
    """The score of one prompt (see the module docstring for the formula)."""
    parts = {
        "length": length_score(len(text)),
        "specificity": specificity_score(normalized),
        "novelty": 1.0 - min(1.0, max(0.0, max_similarity)),
        "confidence": min(1.0, max(0.0, confidence)),
    }
    return round(sum(WEIGHTS[name] * value for name, value in parts.items()), 3)
