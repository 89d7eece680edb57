"""Prompt bank pages, under /promptbank/. The names are a contract: templates and other apps reverse them."""

from django.urls import path

from promptbank import views

app_name = "promptbank"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    path("export/", views.ExportView.as_view(), name="export"),
    path("prompts/<uuid:pk>/", views.PromptDetailView.as_view(), name="prompt_detail"),
    path("prompts/<uuid:pk>/edit/", views.PromptEditView.as_view(), name="prompt_edit"),
    path("prompts/<uuid:pk>/variants/", views.PromptVariantsView.as_view(), name="prompt_variants"),
    path("prompts/<uuid:pk>/active/", views.PromptActiveView.as_view(), name="prompt_active"),
    path("imports/", views.ImportView.as_view(), name="import_new"),
    path("imports/<uuid:pk>/", views.ImportDetailView.as_view(), name="import_detail"),
    path("imports/<uuid:pk>/status/", views.ImportStatusView.as_view(), name="import_status"),
    path("submissions/", views.SubmissionsView.as_view(), name="submissions"),
    path("submissions/<uuid:pk>/accept/", views.SubmissionAcceptView.as_view(), name="submission_accept"),
    path("submissions/<uuid:pk>/reject/", views.SubmissionRejectView.as_view(), name="submission_reject"),
    path("releases/", views.ReleasesView.as_view(), name="releases"),
    path("releases/compare/", views.ReleaseCompareView.as_view(), name="release_compare"),
    path("releases/<uuid:pk>/", views.ReleaseDetailView.as_view(), name="release_detail"),
    path("releases/<uuid:pk>/activate/", views.ReleaseActivateView.as_view(), name="release_activate"),
    path("releases/<uuid:pk>/export/", views.ReleaseExportView.as_view(), name="release_export"),
    path("nearest/", views.NearestView.as_view(), name="nearest"),
    path("learning-policy/", views.LearningPolicyView.as_view(), name="learning_policy"),
]
