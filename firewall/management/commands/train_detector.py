"""`manage.py train_detector [--activate auto|force|never] [--seed N] [--org SLUG] [--shadow] [--schedule]`:
train the firewall's classifier from the active prompt bank, store it as a new version and activate it per the rule
(see `firewall.detectors.detector_train`). With --org, that organization's own classifier: the shared bank plus its
own prompts (its accepted findings and reports), serving only that organization. With --shadow, keep it from
activation and run it in shadow beside the active one instead (`firewall.shadow`). With --schedule, train nothing:
start the periodic retrain job (RQ scheduler, FIREWALL_RETRAIN_INTERVAL_S; idempotent), as the worker entry point does.

Prints what it trained on and the held-out figures, then one JSON line last: `{"version", "organization", "status",
"reason", "metrics"}` (with --schedule: `{"scheduled", "interval_s"}`). An error (an empty bank, say) is one readable
line and a non-zero exit.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import organization_by_slug, service_errors
from firewall.detectors import ACTIVATE_RULES, detector_train


class Command(BaseCommand):
    help = "Train the firewall classifier from the active prompt bank and store it as a new version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--activate",
            choices=ACTIVATE_RULES,
            default=None,
            help="auto: only if no worse than the active version on held-out recall and FPR and on the benign set "
            "(default); force: always; never: keep it as a candidate.",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the held-out split (default 0).")
        parser.add_argument(
            "--org",
            default=None,
            metavar="SLUG",
            help="Train this organization's own classifier (shared bank + its own prompts) instead of the shared one.",
        )
        parser.add_argument(
            "--shadow",
            action="store_true",
            help="Run the new version in shadow (never enforced) instead of activating.",
        )
        parser.add_argument(
            "--schedule",
            action="store_true",
            help="Train nothing; start the periodic retrain job every FIREWALL_RETRAIN_INTERVAL_S (needs Redis).",
        )

    def handle(self, *args: Any, activate: str | None = None, seed: int = 0, **options: Any) -> None:
        if options["schedule"]:
            self._schedule(activate, options["shadow"])
            return
        if options["shadow"] and activate not in (None, "never"):
            raise CommandError(
                f"--shadow keeps the new version from activation; it does not go with --activate {activate}"
            )
        organization = organization_by_slug(options["org"]) if options["org"] else None
        if organization is not None and options["shadow"]:
            raise CommandError("--shadow runs shared versions only; it does not go with --org")
        whose = f"{organization.slug}'s own classifier" if organization is not None else "the classifier"
        self.stdout.write(f"Training {whose} on the active bank…")
        with service_errors():
            version = detector_train(
                activate="never" if options["shadow"] else activate or "auto", seed=seed, organization=organization
            )
            if options["shadow"]:
                from firewall.shadow import shadow_start

                version = shadow_start(version=version)
                version.reason = "In shadow: scored beside the active version on live traffic, never enforced."
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
        benign = metrics.get("benign_set") or {}
        if benign:
            active = benign.get("active") or {}
            versus = (
                f" (active v{active['version']}: {active['false_positives']})" if "false_positives" in active else ""
            )
            self.stdout.write(
                f"Benign set ({benign['prompts']} prompts, {benign['false_positive_reports']} from accepted "
                f"false-positive reports): {benign['false_positives']} blocked{versus}."
            )
        for category, recall in metrics.get("per_category_recall", {}).items():
            self.stdout.write(f"  recall on {category}: {recall:.3f}")
        self.stdout.write(f"Classifier v{version.version}: {version.status}. {version.reason}")
        summary = {
            "version": version.version,
            "organization": organization.slug if organization is not None else None,
            "status": version.status,
            "reason": version.reason,
            "metrics": metrics,
        }
        self.stdout.write(json.dumps(summary))

    def _schedule(self, activate: str | None, shadow: bool) -> None:
        from firewall import retrain

        if activate is not None or shadow:
            raise CommandError("--schedule trains nothing now; it does not go with --activate or --shadow")
        if settings.JOBS_BACKEND != "rq":
            raise CommandError("--schedule needs Redis (REDIS_URL) and a worker started with --with-scheduler")
        job_id = retrain.schedule_retrain()
        self.stdout.write(json.dumps({"scheduled": job_id, "interval_s": settings.FIREWALL_RETRAIN_INTERVAL_S}))
