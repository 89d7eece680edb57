from django.apps import AppConfig


class TestingConfig(AppConfig):
    name = "testing"
    verbose_name = "Red-team testing"
    default_auto_field = "django.db.models.BigAutoField"
