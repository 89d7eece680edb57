"""Accounts API: the organization, its members, invitations, API keys and audit log. Views parse and call services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.api import serializers as s
from accounts.choices import Role, Scope
from accounts.filters import AuditLogFilter
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership
from evalence.api.views import TenantAPIView, TenantReadOnlyViewSet
from evalence.http import client_ip


class OrganizationView(TenantAPIView):
    """The organization the caller acts in (the API key's, or the session's active one)."""

    write_role = Role.ADMIN
    write_scope = None

    @extend_schema(responses=s.OrganizationSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.OrganizationSerializer(request.organization).data)

    @extend_schema(request=s.OrganizationUpdateSerializer, responses=s.OrganizationSerializer)
    def patch(self, request: Request) -> Response:
        data = s.OrganizationUpdateSerializer(
            data={"name": request.organization.name, "plan": request.organization.plan, **request.data}
        )
        data.is_valid(raise_exception=True)
        organization = services.organization_update(
            organization=request.organization, actor=request.user, ip=client_ip(request), **data.validated_data
        )
        return Response(s.OrganizationSerializer(organization).data)


class MembershipViewSet(mixins.UpdateModelMixin, mixins.DestroyModelMixin, TenantReadOnlyViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = s.MembershipSerializer
    write_role = Role.ADMIN
    write_scope = None
    http_method_names = ["get", "patch", "delete", "head", "options"]
    ordering_fields = ["created_at", "role"]

    @extend_schema(request=s.MembershipRoleSerializer, responses=s.MembershipSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()  # look up first: another organization's id is a 404, whatever the body
        data = s.MembershipRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, role=data.validated_data["role"], actor=request.user, ip=client_ip(request)
        )
        return Response(s.MembershipSerializer(membership).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.membership_remove(membership=self.get_object(), actor=request.user, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    queryset = Invitation.objects.all()
    serializer_class = s.InvitationSerializer
    read_role, write_role, write_scope = Role.ADMIN, Role.ADMIN, None

    @extend_schema(request=s.InvitationCreateSerializer, responses={201: s.InvitationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(
            organization=request.organization, actor=request.user, ip=client_ip(request), **data.validated_data
        )
        return Response(s.InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.InvitationSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        invitation = services.invitation_revoke(invitation=self.get_object(), actor=request.user, ip=client_ip(request))
        return Response(s.InvitationSerializer(invitation).data)


class ApiKeyViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """API keys are managed by signed-in admins only: a key can never mint or revoke keys."""

    queryset = ApiKey.objects.select_related("created_by")
    serializer_class = s.ApiKeySerializer
    read_role, write_role, write_scope = Role.ADMIN, Role.ADMIN, None
    filterset_fields = ["name", "prefix"]

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeySecretSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = services.api_key_create(
            organization=request.organization, actor=request.user, ip=client_ip(request), **data.validated_data
        )
        body = s.ApiKeySecretSerializer(key, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.ApiKeySecretSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        key, secret = services.api_key_rotate(api_key=self.get_object(), actor=request.user, ip=client_ip(request))
        return Response(s.ApiKeySecretSerializer(key, context={"secret": secret}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = services.api_key_revoke(api_key=self.get_object(), actor=request.user, ip=client_ip(request))
        return Response(s.ApiKeySerializer(key).data)


class AuditLogViewSet(TenantReadOnlyViewSet):
    """The audit trail, newest first; readable by admins and by keys with the `read` scope (SIEM export)."""

    queryset = AuditLog.objects.all()
    serializer_class = s.AuditLogSerializer
    filterset_class = AuditLogFilter
    read_role = Role.ADMIN
    read_scope = Scope.READ
    ordering_fields = ["created_at", "sequence"]


class AuditVerificationViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Start a background verification of the audit chain (202) and read its verdict."""

    queryset = AuditVerification.objects.all()
    serializer_class = s.AuditVerificationSerializer
    read_role, write_role, write_scope = Role.ADMIN, Role.ADMIN, None

    @extend_schema(request=None, responses={202: s.AuditVerificationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        verification = services.audit_verification_start(organization=request.organization, actor=request.user)
        return Response(s.AuditVerificationSerializer(verification).data, status=status.HTTP_202_ACCEPTED)
