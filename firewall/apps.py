from django.apps import AppConfig


class FirewallConfig(AppConfig):
    name = "firewall"
    verbose_name = "Firewall"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import firewall.metrics  # noqa: F401 - registers the collectors and subscribes them to circuit breakers
        from firewall import signals

        signals.connect(self)
