from django.db import models


class Role(models.TextChoices):
    """Roles are ordered: each one can do everything the one before it can."""

    VIEWER = "viewer", "Viewer"
    ANALYST = "analyst", "Analyst"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 0, Role.ANALYST: 1, Role.ADMIN: 2}


class Scope(models.TextChoices):
    FIREWALL_EVALUATE = "firewall:evaluate", "Evaluate through the firewall"
    TESTING_RUN = "testing:run", "Run red-team tests"
    PROMPTBANK_WRITE = "promptbank:write", "Write to the prompt bank"
    READ = "read", "Read"


class Plan(models.TextChoices):
    FREE = "free", "Free"
    TEAM = "team", "Team"
    ENTERPRISE = "enterprise", "Enterprise"


class AuditAction(models.TextChoices):
    LOGIN = "auth.login", "Signed in"
    LOGIN_FAILED = "auth.login_failed", "Sign-in failed"
    LOGOUT = "auth.logout", "Signed out"
    ORG_CREATED = "org.created", "Organization created"
    ORG_UPDATED = "org.updated", "Organization updated"
    MEMBER_ADDED = "member.added", "Member added"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    INVITATION_SENT = "invitation.sent", "Invitation sent"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_ROTATED = "api_key.rotated", "API key rotated"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    POLICY_CHANGED = "policy.changed", "Policy changed"
    EMERGENCY_STOP = "firewall.emergency_stop", "Firewall emergency stop switched"
    TARGET_CHANGED = "testing.target_changed", "Test target changed"
    VERDICT_OVERRIDDEN = "testing.verdict_overridden", "Test verdict overridden"
    LEARNING_POLICY_CHANGED = "learning.policy_changed", "Learning policy changed"
    SHADOW_STARTED = "firewall.shadow_started", "Shadow detector started"
    SHADOW_STOPPED = "firewall.shadow_stopped", "Shadow detector stopped"
    DETECTOR_PROMOTED = "firewall.detector_promoted", "Detector version promoted"
    PATTERN_PROMOTED = "threat_pattern.promoted", "Threat pattern promoted to the shared bank"
    REPORT_SCHEDULE_CHANGED = "report.schedule_changed", "Report schedule changed"
    DATA_DELETED = "data.deleted", "Data deleted"
    AUDIT_VERIFIED = "audit.verified", "Audit log verified"
