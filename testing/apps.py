from django.apps import AppConfig


class TestingConfig(AppConfig):
    name = "testing"
    verbose_name = "Red-team testing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The bank cannot import this app (ARCHITECTURE.md): it sends a signal, and the firewall regression listens.
        from promptbank.signals import release_created
        from testing import regression

        release_created.connect(regression.on_release_created, dispatch_uid="testing.regression.release_created")
