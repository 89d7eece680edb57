from django.urls import path, re_path

from evalence.api.routers import Router
from promptbank.api import views

router = Router()
router.register("prompts", views.PromptViewSet, basename="prompt")
router.register("imports", views.ImportViewSet, basename="import")
router.register("submissions", views.SubmissionViewSet, basename="submission")
router.register("releases", views.ReleaseViewSet, basename="release")
router.register("learning-events", views.LearningEventViewSet, basename="learning-event")

urlpatterns = [
    path("export/", views.ExportView.as_view(), name="export"),
    re_path(r"^learning-policy/?$", views.LearningPolicyView.as_view(), name="learning-policy"),
    re_path(r"^nearest/?$", views.NearestView.as_view(), name="nearest"),  # a POST must not be redirected to a slash
    *router.urls,
]
