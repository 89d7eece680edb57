"""`manage.py train_detector [--activate auto|force|never] [--seed N]`: train the firewall's classifier from the
active prompt bank, store it as a new version and activate it per the rule (see `firewall.detectors.detector_train`).

Prints what it trained on and the held-out figures, then one JSON line last: `{"version", "status", "reason",
"metrics"}`. An error (an empty bank, say) is one readable line and a non-zero exit.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._helpers import service_errors
from firewall.detectors import ACTIVATE_RULES, detector_train


class Command(BaseCommand):
    help = "Train the firewall classifier from the active prompt bank and store it as a new version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--activate",
            choices=ACTIVATE_RULES,
            default="auto",
            help="auto: only if no worse than the active version on held-out recall and FPR (default); "
            "force: always; never: keep it as a candidate.",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the held-out split (default 0).")

    def handle(self, *args: Any, activate: str = "auto", seed: int = 0, **options: Any) -> None:
        self.stdout.write("Training the classifier on the active bank…")
        with service_errors():
            version = detector_train(activate=activate, seed=seed)
        training, metrics = version.training, version.metrics
        self.stdout.write(
            f"Trained on {training['bank']}: {training['prompts']} prompts ({training['attacks']} attacks, "
            f"{training['benign']} benign) in {training['seconds']} s."
        )
        self.stdout.write(
            f"Held-out ({metrics['n_holdout']} prompts): precision {metrics['precision']:.3f}, recall "
            f"{metrics['recall']:.3f}, F1 {metrics['f1']:.3f}, FPR {metrics['fpr']:.3f} at threshold "
            f"{metrics['threshold']:.3f}."
        )
        for category, recall in metrics.get("per_category_recall", {}).items():
            self.stdout.write(f"  recall on {category}: {recall:.3f}")
        self.stdout.write(f"Classifier v{version.version}: {version.status}. {version.reason}")
        summary = {"version": version.version, "status": version.status, "reason": version.reason, "metrics": metrics}
        self.stdout.write(json.dumps(summary))
