"""Account pages: sign-in, the organization switcher, invitations and the settings of an organization.

Views parse a form, call one service and redirect (POST/redirect/GET); the services validate, write and audit.
Tenancy and roles come from the base classes in `evalence.views`: pages subclass `OrgPageMixin`, views of one object
subclass `TenantObjectMixin`, so another organization's object is a 404 and a missing role a 403.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.generic import RedirectView, TemplateView

from accounts import services
from accounts.choices import Role
from accounts.forms import (
    ApiKeyForm,
    EmailAuthenticationForm,
    InvitationForm,
    InvitationSignupForm,
    MemberRoleForm,
    OrganizationForm,
    add_service_error,
    audit_log_filter_for_page,
)
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership, User
from evalence.errors import ApplicationError, NotFound, ValidationFailed
from evalence.http import client_ip
from evalence.tenancy import activate_organization
from evalence.views import ObjectActionView as BaseObjectActionView
from evalence.views import OrgPageMixin

# The secret of a key just created or rotated, kept in the session for exactly one render of the API-keys page.
NEW_KEY_SESSION_KEY = "accounts_new_api_key"
AUDIT_PAGE_SIZE = 50


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- signing in and out ------------------------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Email and password; the sign-in (or the failed attempt) is audited by `accounts.signals`."""

    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only, so a link or an image on another page cannot sign anyone out."""

    http_method_names = ["post", "options"]


class OrganizationSwitchView(OrgPageMixin, View):
    """Make another of the user's organizations the active one; an organization they are not in is a 404."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        memberships = Membership.objects.filter(user=request.user).select_related("organization")
        membership = get_object_or_404(memberships, organization__slug=request.POST.get("organization", ""))
        activate_organization(request, membership.organization)
        messages.info(request, f"You are now working in {membership.organization.name}.")
        return HttpResponseRedirect(_safe_next(request, reverse("analytics:overview")))


# --- invitations -------------------------------------------------------------------------------------------------


@method_decorator(never_cache, name="dispatch")
class InvitationAcceptView(View):
    """The public page behind an invitation link.

    Four cases: the invited address has no account (choose a name and password, then you are signed in); you are
    signed in as the invited address (accept); an account exists but you are not signed in (sign in first); you are
    signed in as someone else (sign out first).
    """

    template_name = "accounts/invitation_accept.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.invitation = services.invitation_for_token(kwargs["token"])
        except NotFound as exc:
            context = {"title": "Invitation not found", "message": exc.message}
            return render(request, "errors/404.html", context, status=404)
        return super().dispatch(request, *args, **kwargs)

    def get_state(self) -> str:
        user = self.request.user
        if user.is_authenticated:
            return "accept" if user.email.lower() == self.invitation.email.lower() else "wrong_user"
        if User.objects.filter(email__iexact=self.invitation.email).exists():
            return "sign_in"
        return "signup"

    def render_page(self, form: InvitationSignupForm | None = None, status: int = 200) -> HttpResponse:
        state = self.get_state()
        if state == "signup" and form is None:
            form = InvitationSignupForm()
        context = {"invitation": self.invitation, "state": state, "form": form}
        return render(self.request, self.template_name, context, status=status)

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        return self.render_page()

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        state = self.get_state()
        if state == "accept":
            try:
                membership = services.invitation_accept(token=token, user=request.user, ip=client_ip(request))
            except ApplicationError as exc:
                messages.error(request, exc.message)
                return redirect(request.path)
            return self.joined(membership)
        if state != "signup":
            return redirect(request.path)
        form = InvitationSignupForm(request.POST)
        if not form.is_valid():
            return self.render_page(form, status=400)
        try:
            membership = services.invitation_accept(
                token=token,
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
                ip=client_ip(request),
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
            return self.render_page(form, status=400)
        login(self.request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        return self.joined(membership)

    def joined(self, membership: Membership) -> HttpResponse:
        activate_organization(self.request, membership.organization)
        role = membership.get_role_display().lower()
        messages.success(self.request, f"Welcome to {membership.organization.name}: you joined as {role}.")
        return redirect("analytics:overview")


# --- settings ----------------------------------------------------------------------------------------------------


class SettingsView(OrgPageMixin, RedirectView):
    pattern_name = "accounts:members"


class SettingsPageMixin(OrgPageMixin):
    """The settings pages share a tab bar; `nav_active` names the tab and the sidebar entry."""

    nav_active = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["nav_active"] = self.nav_active
        context["organization"] = self.organization
        return context


class OrganizationView(SettingsPageMixin, TemplateView):
    """Every member sees the organization; admins rename it and change its plan."""

    template_name = "accounts/organization.html"
    nav_active = "organization"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or OrganizationForm(
            initial={"name": self.organization.name, "plan": self.organization.plan}
        )
        if not self.membership.is_admin:
            for field in form.fields.values():
                field.disabled = True
        context["form"] = form
        context["member_count"] = Membership.objects.for_org(self.organization).count()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                services.organization_update(
                    organization=self.organization, actor=request.user, ip=client_ip(request), **form.cleaned_data
                )
            except ApplicationError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, "Organization settings saved.")
                return redirect("accounts:organization")
        return self.render_to_response(self.get_context_data(form=form))


class MembersView(SettingsPageMixin, TemplateView):
    """Members and pending invitations; admins invite (POST here), change roles and remove people."""

    template_name = "accounts/members.html"
    nav_active = "members"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["memberships"] = (
            Membership.objects.for_org(self.organization).select_related("user").order_by("user__email")
        )
        context["roles"] = Role.choices
        if self.membership.is_admin:
            context["invite_form"] = kwargs.get("invite_form") or InvitationForm()
            context["invitations"] = (
                Invitation.objects.for_org(self.organization)
                .filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
                .select_related("invited_by")
                .order_by("-created_at")
            )
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = InvitationForm(request.POST)
        if form.is_valid():
            try:
                invitation, _token = services.invitation_create(
                    organization=self.organization, actor=request.user, ip=client_ip(request), **form.cleaned_data
                )
            except ApplicationError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, f"Invitation sent to {invitation.email} as {invitation.get_role_display()}.")
                return redirect("accounts:members")
        return self.render_to_response(self.get_context_data(invite_form=form))


class ObjectActionView(BaseObjectActionView):
    """A POST-only action on one object of the active organization, for admins; then back to `success_url_name`."""

    min_role = Role.ADMIN


class MemberRoleView(ObjectActionView):
    model = Membership
    success_url_name = "accounts:members"

    def get_base_queryset(self) -> QuerySet:
        return Membership.objects.select_related("user", "organization")

    def act(self, obj: Membership) -> str:
        form = MemberRoleForm(self.request.POST)
        if not form.is_valid():
            raise ValidationFailed("Choose one of the roles: " + ", ".join(label for _value, label in Role.choices))
        membership = services.membership_change_role(
            membership=obj, role=form.cleaned_data["role"], actor=self.request.user, ip=client_ip(self.request)
        )
        return f"{membership.user.email} is now {membership.get_role_display().lower()}."


class MemberRemoveView(ObjectActionView):
    model = Membership
    success_url_name = "accounts:members"

    def get_base_queryset(self) -> QuerySet:
        return Membership.objects.select_related("user", "organization")

    def act(self, obj: Membership) -> str:
        email = obj.user.email
        services.membership_remove(membership=obj, actor=self.request.user, ip=client_ip(self.request))
        return f"{email} was removed from {self.organization.name}."


class InvitationRevokeView(ObjectActionView):
    model = Invitation
    success_url_name = "accounts:members"

    def act(self, obj: Invitation) -> str:
        services.invitation_revoke(invitation=obj, actor=self.request.user, ip=client_ip(self.request))
        return f"The invitation for {obj.email} was revoked."


# --- API keys ----------------------------------------------------------------------------------------------------


def _remember_secret(request: HttpRequest, key: ApiKey, secret: str) -> None:
    request.session[NEW_KEY_SESSION_KEY] = {"id": str(key.pk), "name": key.name, "secret": secret}


@method_decorator(never_cache, name="dispatch")
class ApiKeysView(SettingsPageMixin, TemplateView):
    """The organization's keys; a new key's secret is shown on the one render that follows its creation."""

    template_name = "accounts/api_keys.html"
    nav_active = "api_keys"
    min_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["api_keys"] = ApiKey.objects.for_org(self.organization).select_related("created_by")
        context["form"] = kwargs.get("form") or ApiKeyForm()
        new_key = self.request.session.pop(NEW_KEY_SESSION_KEY, None)
        if new_key and ApiKey.objects.for_org(self.organization).filter(pk=new_key["id"]).exists():
            context["new_key"] = new_key
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                key, secret = services.api_key_create(
                    organization=self.organization,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at,
                    actor=request.user,
                    ip=client_ip(request),
                )
            except ApplicationError as exc:
                add_service_error(form, exc)
            else:
                _remember_secret(request, key, secret)
                messages.success(request, f"API key “{key.name}” created.")
                return redirect("accounts:api_keys")
        return self.render_to_response(self.get_context_data(form=form))


class ApiKeyRotateView(ObjectActionView):
    model = ApiKey
    success_url_name = "accounts:api_keys"

    def act(self, obj: ApiKey) -> str:
        key, secret = services.api_key_rotate(api_key=obj, actor=self.request.user, ip=client_ip(self.request))
        _remember_secret(self.request, key, secret)
        return f"API key “{key.name}” rotated: the old secret ({obj.prefix}…) no longer works."


class ApiKeyRevokeView(ObjectActionView):
    model = ApiKey
    success_url_name = "accounts:api_keys"

    def act(self, obj: ApiKey) -> str:
        services.api_key_revoke(api_key=obj, actor=self.request.user, ip=client_ip(self.request))
        return f"API key “{obj.name}” ({obj.prefix}…) revoked."


# --- audit log ---------------------------------------------------------------------------------------------------


class AuditLogView(SettingsPageMixin, TemplateView):
    """The organization's audit trail with the API's filters, and the verdict of the latest chain verification."""

    template_name = "accounts/audit_log.html"
    nav_active = "audit_log"
    min_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        filterset = audit_log_filter_for_page(self.request.GET or None, AuditLog.objects.for_org(self.organization))
        page = Paginator(filterset.qs.order_by("-sequence"), AUDIT_PAGE_SIZE).get_page(self.request.GET.get("page"))
        for entry in page:
            entry.data_json = (
                json.dumps(entry.data, ensure_ascii=False, sort_keys=True, default=str) if entry.data else ""
            )
        context["filter"] = filterset
        context["page_obj"] = page
        context["is_filtered"] = any(self.request.GET.get(name) for name in filterset.form.fields)
        context["verification"] = AuditVerification.objects.for_org(self.organization).order_by("-created_at").first()
        return context


class AuditVerifyView(OrgPageMixin, View):
    http_method_names = ["post"]
    min_role = Role.ADMIN

    def post(self, request: HttpRequest) -> HttpResponse:
        services.audit_verification_start(organization=self.organization, actor=request.user)
        messages.info(request, "Verification of the audit chain started; the result appears below when it finishes.")
        return redirect("accounts:audit_log")
