"""Account pages, included at the site root. The names are a contract: other apps and templates reverse them."""

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("orgs/switch/", views.OrganizationSwitchView.as_view(), name="org_switch"),
    path("invite/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation_accept"),
    path("settings/", views.SettingsView.as_view(), name="settings"),
    path("settings/organization/", views.OrganizationView.as_view(), name="organization"),
    path("settings/members/", views.MembersView.as_view(), name="members"),
    path("settings/members/<uuid:pk>/role/", views.MemberRoleView.as_view(), name="member_role"),
    path("settings/members/<uuid:pk>/remove/", views.MemberRemoveView.as_view(), name="member_remove"),
    path("settings/invitations/<uuid:pk>/revoke/", views.InvitationRevokeView.as_view(), name="invitation_revoke"),
    path("settings/api-keys/", views.ApiKeysView.as_view(), name="api_keys"),
    path("settings/api-keys/<uuid:pk>/rotate/", views.ApiKeyRotateView.as_view(), name="api_key_rotate"),
    path("settings/api-keys/<uuid:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api_key_revoke"),
    path("settings/audit-log/", views.AuditLogView.as_view(), name="audit_log"),
    path("settings/audit-log/verify/", views.AuditVerifyView.as_view(), name="audit_verify"),
]
