"""Firewall pages, under /firewall/. The names are a contract: templates and other apps reverse them."""

from django.urls import path

from firewall import views

app_name = "firewall"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    path("evaluations/<uuid:pk>/", views.EvaluationDetailView.as_view(), name="evaluation_detail"),
    path("evaluations/<uuid:pk>/feedback/", views.EvaluationFeedbackView.as_view(), name="evaluation_feedback"),
    path("playground/", views.PlaygroundView.as_view(), name="playground"),
    path("policy/", views.PolicyView.as_view(), name="policy"),
    path("emergency-stop/", views.EmergencyStopView.as_view(), name="emergency_stop"),
    path("threat-patterns/", views.ThreatPatternsView.as_view(), name="threat_patterns"),
    path("shadow/", views.ShadowView.as_view(), name="shadow"),
]
