from django.urls import path

from accounts.api import views
from evalence.api.routers import Router

router = Router()
router.register("members", views.MembershipViewSet)
router.register("invitations", views.InvitationViewSet)
router.register("api-keys", views.ApiKeyViewSet)
router.register("audit-log", views.AuditLogViewSet)
router.register("audit-verifications", views.AuditVerificationViewSet)

urlpatterns = [
    path("organization/", views.OrganizationView.as_view(), name="organization"),
    *router.urls,
]
