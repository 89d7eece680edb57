"""Curation of tenants, people, keys and the audit trail. Writes that matter go through services (and are audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership, Organization, User
from evalence.admin import SuperuserWritesMixin, TenantAdmin
from evalence.errors import ApplicationError


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "plan", "member_count", "created_at")
    list_filter = ("plan",)
    search_fields = ("name", "slug")
    readonly_fields = ("id", "created_at")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request).annotate(_members=Count("memberships"))
        if request.user.is_superuser:
            return qs
        return qs.filter(memberships__user=request.user).distinct()

    @admin.display(ordering="_members", description="members")
    def member_count(self, obj: Organization) -> int:
        return obj._members

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(User)
class UserAdmin(SuperuserWritesMixin, DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_superuser", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ("groups", "user_permissions")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        # Staff see the people of their own organizations only.
        return qs.filter(memberships__organization__memberships__user=request.user).distinct()


admin.site.unregister(Group)


@admin.register(Group)
class SuperuserGroupAdmin(SuperuserWritesMixin, GroupAdmin):
    """Groups grant permissions across every organization: only superusers see or manage them."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", "organization")
    list_select_related = ("organization", "user")
    search_fields = ("user__email", "organization__name", "organization__slug")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change and "role" in form.changed_data:
            original = Membership.objects.get(pk=obj.pk)
            new_role, obj.role = obj.role, original.role
            services.membership_change_role(membership=obj, role=new_role, actor=request.user)
        elif not change:
            services.membership_add(organization=obj.organization, user=obj.user, role=obj.role, actor=request.user)
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(membership=obj, actor=request.user)


@admin.register(Invitation)
class InvitationAdmin(TenantAdmin):
    list_display = ("email", "organization", "role", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role", "organization")
    search_fields = ("email",)
    readonly_fields = ("token_hash", "invited_by", "accepted_at", "revoked_at", "created_at")
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are sent from the members page, which emails the link

    @admin.action(description="Revoke selected pending invitations")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for invitation in queryset:
            if invitation.is_pending:
                services.invitation_revoke(invitation=invitation, actor=request.user)
                done += 1
        self.message_user(request, f"Revoked {done} invitation(s).")


@admin.register(ApiKey)
class ApiKeyAdmin(TenantAdmin):
    list_display = ("name", "prefix", "organization", "status", "scopes", "last_used_at", "expires_at", "created_at")
    list_filter = ("organization",)
    search_fields = ("name", "prefix", "organization__slug")
    readonly_fields = (
        "prefix",
        "secret_hash",
        "created_by",
        "revoked_at",
        "last_used_at",
        "rotated_from",
        "created_at",
    )
    fields = ("organization", "name", "scopes", "expires_at", *readonly_fields)
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are created where the secret can be shown once: the API-keys page, API or command

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for key in queryset:
            try:
                services.api_key_revoke(api_key=key, actor=request.user, reason="revoked in admin")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{key}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"Revoked {done} key(s).")


@admin.register(AuditLog)
class AuditLogAdmin(TenantAdmin):
    """Read-only: the audit trail is append-only, and the hash chain would expose any edit."""

    list_display = ("sequence", "created_at", "organization", "action", "actor_label", "target_label", "ip_address")
    list_filter = ("action", "organization")
    search_fields = ("actor_label", "target_label", "target_id")
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = AuditLog.objects.select_related("organization")
        return qs if request.user.is_superuser else qs.for_user(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditVerification)
class AuditVerificationAdmin(TenantAdmin):
    list_display = ("organization", "status", "is_intact", "entries_checked", "first_broken_sequence", "created_at")
    list_filter = ("status", "is_intact")
    readonly_fields = (
        "organization",
        "status",
        "created_by",
        "entries_checked",
        "is_intact",
        "first_broken_sequence",
        "problem",
        "error",
        "traceback",
        "started_at",
        "finished_at",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
