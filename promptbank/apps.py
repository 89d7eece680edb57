from django.apps import AppConfig


class PromptbankConfig(AppConfig):
    name = "promptbank"
    verbose_name = "Prompt bank"
    default_auto_field = "django.db.models.BigAutoField"
