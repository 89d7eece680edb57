"""Top-level URLs: pages per app, the versioned API, docs, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from evalence import health, metrics
from evalence.admin import restrict_rq_dashboard_to_superusers
from evalence.api.routers import api_root

admin.site.site_header = "Evalence curation"
admin.site.site_title = "Evalence admin"
admin.site.index_title = "Curation"
restrict_rq_dashboard_to_superusers()

api_v1 = [
    path("", api_root, name="root"),
    path("accounts/", include("accounts.api.urls")),
    path("promptbank/", include(("promptbank.api.urls", "promptbank"), namespace="promptbank")),
    path("firewall/", include(("firewall.api.urls", "firewall"), namespace="firewall")),
    path("testing/", include(("testing.api.urls", "testing"), namespace="testing")),
]

urlpatterns = [
    path("", include("analytics.urls")),
    path("", include("accounts.urls")),
    path("promptbank/", include("promptbank.urls")),
    path("firewall/", include("firewall.urls")),
    path("testing/", include("testing.urls")),
    path("demo-assistant/", include("testing.demo_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
]

handler400 = "evalence.errors.handler400"
handler403 = "evalence.errors.handler403"
handler404 = "evalence.errors.handler404"
handler500 = "evalence.errors.handler500"
