from django.urls import path, re_path

from evalence.api.routers import Router
from firewall.api import views

router = Router()
router.register("evaluations", views.EvaluationViewSet, basename="evaluation")

urlpatterns = [
    # With or without the trailing slash: integrations call `POST /api/v1/firewall/evaluate` (ARCHITECTURE.md), and
    # a POST redirected to add a slash would lose its body.
    re_path(r"^evaluate/?$", views.EvaluateView.as_view(), name="evaluate"),
    re_path(r"^evaluate/batch/?$", views.EvaluateBatchView.as_view(), name="evaluate-batch"),
    path("policy/", views.PolicyView.as_view(), name="policy"),
    path("policy/emergency-stop/", views.EmergencyStopView.as_view(), name="emergency-stop"),
    path("threat-patterns/", views.ThreatPatternListView.as_view(), name="threat-pattern-list"),
    *router.urls,
]
