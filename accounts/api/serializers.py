from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.choices import Plan, Role, Scope
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership, Organization


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "plan", "created_at"]
        read_only_fields = ["id", "slug", "created_at"]


class OrganizationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    plan = serializers.ChoiceField(choices=Plan.choices)


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "created_at"]
        read_only_fields = ["id", "email", "full_name", "created_at"]


class MembershipRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "expires_at", "accepted_at", "revoked_at", "created_at"]
        read_only_fields = fields

    def get_status(self, obj: Invitation) -> str:
        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "revoked"
        return "pending" if obj.is_pending else "expired"


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "status",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeySecretSerializer(ApiKeySerializer):
    """The one response that carries the secret: right after creation or rotation."""

    secret = serializers.SerializerMethodField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, obj: ApiKey) -> str:
        return self.context["secret"]


class AuditLogSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditLog
        fields = ["id", "sequence", "action", "actor", "target", "ip_address", "data", "created_at", "entry_hash"]
        read_only_fields = fields

    def get_target(self, obj: AuditLog) -> dict[str, Any]:
        return {"type": obj.target_type, "id": obj.target_id, "label": obj.target_label}


class AuditVerificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditVerification
        fields = [
            "id",
            "status",
            "entries_checked",
            "is_intact",
            "first_broken_sequence",
            "problem",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
