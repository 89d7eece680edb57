"""Red-team testing pages, under /testing/. The names are a contract: templates and other apps reverse them.

Each export format has its own path under one name (`testing:session_export` with `pk` and `fmt`), so an unknown
format is a plain 404 and every URL's only argument is the session's id.
"""

from django.urls import path

from testing import views
from testing.reports import EXPORT_FORMATS

app_name = "testing"
export = views.SessionExportView.as_view()

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
    path("targets/", views.TargetListView.as_view(), name="targets"),
    path("targets/new/", views.TargetCreateView.as_view(), name="target_new"),
    path("targets/<uuid:pk>/", views.TargetDetailView.as_view(), name="target_detail"),
    path("targets/<uuid:pk>/delete/", views.TargetDeleteView.as_view(), name="target_delete"),
    path("targets/<uuid:pk>/test/", views.TargetCheckView.as_view(), name="target_test"),
    path("suites/", views.SuiteListView.as_view(), name="suites"),
    path("suites/new/", views.SuiteCreateView.as_view(), name="suite_new"),
    path("suites/<uuid:pk>/", views.SuiteDetailView.as_view(), name="suite_detail"),
    path("sessions/", views.SessionListView.as_view(), name="sessions"),
    path("sessions/<uuid:pk>/", views.SessionDetailView.as_view(), name="session_detail"),
    path("sessions/<uuid:pk>/cancel/", views.SessionCancelView.as_view(), name="session_cancel"),
    path("sessions/<uuid:pk>/resume/", views.SessionResumeView.as_view(), name="session_resume"),
    *(path(f"sessions/<uuid:pk>/export/{fmt}/", export, {"fmt": fmt}, name="session_export") for fmt in EXPORT_FORMATS),
    path("results/<uuid:pk>/", views.ResultDetailView.as_view(), name="result_detail"),
    path("results/<uuid:pk>/override/", views.ResultOverrideView.as_view(), name="result_override"),
    path("results/<uuid:pk>/submit/", views.ResultSubmitView.as_view(), name="result_submit"),
    path("compare/", views.CompareView.as_view(), name="compare"),
]
