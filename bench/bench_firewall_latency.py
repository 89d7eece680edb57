"""In-process latency of one firewall evaluation: the whole engine (normalization, decoding, signatures, the trained
classifier, similarity to the bank's attacks, secrets and PII) and the policy decision, without HTTP or storage.

The classifier is trained from the shipped seed bank and the similarity index holds its attack prompts, as after
`seed_demo` + `train_detector`. Inputs are real bank prompts (attacks and benign, alternating) cut or concatenated to
100 characters, 1 KB and 10 KB; each size runs a warm-up, then every call is timed with `perf_counter_ns`. "µs per
KB" at p50 shows how cost grows with length (flat or falling = at most linear). The last row repeats 1 KB with
2,000 learned signatures added (phrase rules, as the learning loop writes them for an organization's accepted
findings: here from 2,000 of the bank's attack prompts), which cost one pass over the input's words however many.
Run alone: `python bench/run.py --only firewall_latency`.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

TITLE = "Firewall: in-process evaluation latency (engine + policy, no HTTP, no storage)"
NEEDS_DATABASE = False

BASE_DIR = Path(__file__).resolve().parent.parent
SEED_FILE = BASE_DIR / "promptbank" / "data" / "bank_seed.jsonl"
SIZES = ((100, "100 B", 3000), (1024, "1 KB", 3000), (10240, "10 KB", 600))
GOAL_1KB = "goal at 1 KB: p50 ≤ 2 ms, p99 ≤ 10 ms"
LEARNED = 2000


def _records() -> list[dict[str, Any]]:
    with SEED_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _inputs(records: list[dict[str, Any]], size: int, count: int) -> list[str]:
    attacks = [r["text"] for r in records if r.get("label") in (1, "attack")]
    benign = [r["text"] for r in records if r.get("label") in (0, "benign")]
    out: list[str] = []
    i = 0
    while len(out) < count:
        pool = attacks if len(out) % 2 else benign
        text = ""
        while len(text) < size:
            text += pool[i % len(pool)] + "\n"
            i += 1
        out.append(text[:size])
    return out


def build_engine(learned: int = 0) -> tuple[Any, Any]:
    """The engine as after `seed_demo` + `train_detector`; with `learned`, that many learned phrase rules too."""
    from firewall.engine.classifier import threat_of, train
    from firewall.engine.pipeline import Engine
    from firewall.engine.policy import PolicyConfig
    from firewall.engine.signatures import (
        BUILTIN_RULES,
        SignatureSet,
        builtin_signatures,
        phrase_rule,
        with_builtin_hints,
    )
    from firewall.engine.similarity import SimilarityIndex
    from firewall.engine.types import Severity

    records = _records()
    texts = [r["text"] for r in records]
    labels = [1 if r.get("label") in (1, "attack") else 0 for r in records]
    categories = [r.get("category", "") for r in records]
    classifier, _metrics = train(texts, labels, categories, seed=0)
    index = SimilarityIndex((str(i), r["text"], "prompt_injection") for i, r in enumerate(records) if labels[i] == 1)
    signatures = builtin_signatures()
    if learned:
        rules = []
        for i, r in enumerate(records):
            rule = phrase_rule(f"LRN-{i}", r["text"], threat_of(r.get("category", "")), Severity.HIGH, 0.95)
            if labels[i] == 1 and rule is not None:
                rules.append(rule)
        signatures = SignatureSet([*(with_builtin_hints(r) for r in BUILTIN_RULES), *rules[:learned]])
    return Engine(signatures=signatures, classifier=classifier, similarity=index), PolicyConfig()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run() -> list[dict[str, Any]]:
    from firewall.engine.pipeline import EngineInput
    from firewall.engine.policy import decide

    engine, policy = build_engine()
    with_learned, _ = build_engine(learned=LEARNED)
    records = _records()
    rows = []
    cases = [(engine, *size) for size in SIZES] + [(with_learned, 1024, f"1 KB, {LEARNED:,} learned signatures", 3000)]
    for engine, size, label, count in cases:
        inputs = _inputs(records, size, count)
        for text in inputs[:200]:  # warm-up: caches, branch predictors, lazy imports
            engine.scan(EngineInput(text=text))
        samples = []
        blocked = 0
        for text in inputs:
            started = time.perf_counter_ns()
            result = engine.scan(EngineInput(text=text))
            verdict = decide(result.findings, policy, text=text, normalized_text=result.normalized.text)
            samples.append((time.perf_counter_ns() - started) / 1e6)
            blocked += verdict.decision == "blocked"
        p50 = _percentile(samples, 0.5)
        rows.append(
            {
                "input": label,
                "calls": count,
                "p50 ms": p50,
                "p99 ms": _percentile(samples, 0.99),
                "mean ms": statistics.fmean(samples),
                "µs per KB at p50": p50 * 1000 / (size / 1024),
                "blocked share": blocked / count,
                "note": GOAL_1KB if size == 1024 else "",
            }
        )
    return rows


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings_test")
    for row in run():
        print(row)
