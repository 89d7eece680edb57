from django.urls import path

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
    *router.urls,
]
