"""Detection quality of the whole firewall engine (normalization, decoding, signatures, the classifier, similarity to
known attacks, secrets and PII) under the default policy, on `../shared/data/dev_benchmark.jsonl`: 1,949 prompts from
sources that are not in the bank (deepset's test split, JailbreakBench artifacts, jackhhao's benign role-play
prompts), which nothing in the product is trained, tuned or indexed on.

The classifier is trained in-process from the shipped seed bank (`promptbank/data/bank_seed.jsonl`, as
`train_detector` does from a freshly seeded bank) and the similarity index holds the seed's attack prompts. An input
counts as detected when the decision is "blocked". Precision, recall and F1 are over the benchmark's attacks; FPR is
the share of its benign prompts blocked. Rows: overall, per source, per category, per language (the bank's tagger;
"?" when too short or mixed to tell), each detector alone (its findings at or above the block threshold 0.7), the
classifier on the bank's held-out split (where its threshold is chosen), and the encoded-variant check: every attack
the engine blocks is rewritten by the bank's mutators (base64, hex, rot13, homoglyphs, zero-width characters) and
must be blocked again (recall column = share of variants blocked); the bank's other mutators (Unicode-tag smuggling,
leetspeak, reversed text, a payload split into parts, role-play wrappers, a request to translate and answer) are
measured the same way, beyond the goal's five forms.
Goal: recall ≥ 0.95 with FPR ≤ 1%, every variant caught.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TITLE = "Firewall: detection quality on the held-out dev benchmark (full engine, default policy)"
NEEDS_DATABASE = False

BASE_DIR = Path(__file__).resolve().parent.parent
SEED_FILE = BASE_DIR / "promptbank" / "data" / "bank_seed.jsonl"
DEV_FILE = Path(os.environ.get("BENCH_DEV_BENCHMARK", BASE_DIR.parent / "shared" / "data" / "dev_benchmark.jsonl"))
MUTATORS = ("base64", "hex", "rot13", "homoglyphs", "zero_width")
# Measured too, beyond the goal's five: the bank's other mutators.
MORE_MUTATORS = ("unicode_tags", "leetspeak", "reversal", "payload_split", "role_play", "translation")
GOAL = "goal: recall ≥ 0.95, FPR ≤ 0.01"


def _read(path: Path) -> list[dict[str, Any]]:
    # split("\n"), not splitlines(): texts may hold U+2028 and other characters that splitlines() breaks on.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def build_detector() -> tuple[Callable[[str], tuple[bool, list[Any]]], dict[str, Any]]:
    """(text → (blocked?, findings), the classifier's held-out metrics on the bank), the engine built from the seed."""
    from firewall.engine.classifier import threat_of, train
    from firewall.engine.pipeline import Engine, EngineInput
    from firewall.engine.policy import PolicyConfig, decide
    from firewall.engine.signatures import builtin_signatures
    from firewall.engine.similarity import SimilarityIndex

    seed = _read(SEED_FILE)
    labels = [int(r["label"]) for r in seed]
    # As `train_detector` trains it (a stratified random split places the threshold).
    classifier, metrics = train([r["text"] for r in seed], labels, [r["category"] for r in seed], seed=0)
    index = SimilarityIndex(
        ((f"seed-{i}", r["text"], threat_of(r["category"]).value) for i, r in enumerate(seed) if r["label"]),
        benign=[r["text"] for r in seed if not r["label"]],
    )
    engine = Engine(signatures=builtin_signatures(), classifier=classifier, similarity=index)
    policy = PolicyConfig()

    def detect(text: str) -> tuple[bool, list[Any]]:
        result = engine.scan(EngineInput(text=text, direction="input"))
        verdict = decide(result.findings, policy, text=text, normalized_text=result.normalized.text)
        return verdict.decision == "blocked", result.findings

    return detect, metrics


def _figures(name: str, outcomes: Iterable[tuple[int, bool]], note: str = "") -> dict[str, Any]:
    tp = fp = fn = tn = 0
    for label, blocked in outcomes:
        if label:
            tp += blocked
            fn += not blocked
        else:
            fp += blocked
            tn += not blocked
    precision = tp / (tp + fp) if tp + fp and tp + fn else None  # no attacks in the slice: FPR says it all
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {
        "slice": name,
        "attacks": tp + fn,
        "benign": fp + tn,
        "precision": "-" if precision is None else round(precision, 3),
        "recall": "-" if recall is None else round(recall, 3),
        "F1": "-" if f1 is None else round(f1, 3),
        "FPR": round(fp / (fp + tn), 4) if fp + tn else "-",
        "note": note,
    }


def run() -> list[dict[str, Any]]:
    from promptbank import mutators
    from promptbank.pipeline.tagging import detect_language

    if not DEV_FILE.is_file():
        raise FileNotFoundError(f"{DEV_FILE} not found (set BENCH_DEV_BENCHMARK)")
    detect, bank_metrics = build_detector()
    dev = _read(DEV_FILE)
    results: list[tuple[dict[str, Any], bool, list[Any]]] = []
    for row in dev:
        blocked, findings = detect(row["text"])
        results.append((row, blocked, findings))

    rows = [_figures("overall", ((int(r["label"]), b) for r, b, _ in results), GOAL)]
    for key, prefix in (("source", "source"), ("category", "category")):
        groups: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        for r, b, _ in results:
            groups[str(r.get(key, ""))].append((int(r["label"]), b))
        rows += [_figures(f"{prefix}: {name}", groups[name]) for name in sorted(groups)]
    languages: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for r, b, _ in results:
        languages[detect_language(r["text"]) or "?"].append((int(r["label"]), b))
    by_size = sorted(languages, key=lambda name: -len(languages[name]))
    rows += [_figures(f"language: {name}", languages[name]) for name in by_size]

    detectors = sorted({f.detector for _, _, findings in results for f in findings})
    for name in detectors:
        outcomes = ((int(r["label"]), any(f.detector == name and f.score >= 0.7 for f in fs)) for r, _, fs in results)
        rows.append(_figures(f"detector alone: {name}", outcomes, "its findings ≥ 0.7, whatever the decision"))
    rows.append(
        {
            "slice": "classifier on the bank's held-out split",
            "attacks": bank_metrics["tp"] + bank_metrics["fn"],
            "benign": bank_metrics["fp"] + bank_metrics["tn"],
            "precision": bank_metrics["precision"],
            "recall": bank_metrics["recall"],
            "F1": bank_metrics["f1"],
            "FPR": bank_metrics["fpr"],
            "note": f"{bank_metrics['validation']}; operating threshold p = {bank_metrics['threshold']:.3f} ↦ 0.7",
        }
    )

    detected = [r["text"] for r, b, _ in results if r["label"] and b]
    for name in MUTATORS + MORE_MUTATORS:
        caught = sum(detect(mutators.apply(name, text, seed=i))[0] for i, text in enumerate(detected))
        beyond = " (beyond the goal's five forms)" if name in MORE_MUTATORS else ""
        rows.append(
            {
                "slice": f"variant: {name}",
                "attacks": len(detected),
                "recall": round(caught / len(detected), 4) if detected else "-",
                "note": f"{len(detected) - caught} detected attacks not caught in this form{beyond}",
            }
        )
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings_test")
    import django

    django.setup()
    for row in run():
        print(row)
