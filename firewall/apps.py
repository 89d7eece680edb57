from django.apps import AppConfig


class FirewallConfig(AppConfig):
    name = "firewall"
    verbose_name = "Firewall"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from firewall import signals

        signals.connect(self)
