from django.urls import path

from analytics import views
from analytics.firewall_views import FirewallAnalyticsView
from analytics.learning_views import LearningView
from analytics.report_views import ReportScheduleView, ReportView
from analytics.testing_views import TestingView

app_name = "analytics"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("analytics/firewall/", FirewallAnalyticsView.as_view(), name="firewall"),
    path("analytics/testing/", TestingView.as_view(), name="testing"),
    path("analytics/learning/", LearningView.as_view(), name="learning"),
    path("analytics/report/", ReportView.as_view(), name="report"),
    path("analytics/report/schedule/", ReportScheduleView.as_view(), name="report_schedule"),
]
