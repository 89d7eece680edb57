from django.apps import AppConfig


class FirewallConfig(AppConfig):
    name = "firewall"
    verbose_name = "Firewall"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: the bank's prompts_changed reaches the similarity index and the learned
        # signatures, and the metrics collectors subscribe to circuit breakers.
        import firewall.detectors
        import firewall.learned
        import firewall.metrics  # noqa: F401
        from firewall import signals
        from firewall.nearest import ThreatPatternSource
        from promptbank.nearest import register_pattern_source

        signals.connect(self)
        register_pattern_source(ThreatPatternSource())  # the bank's nearest-attack search covers threat patterns
