"""Writes for tenants, people, keys and the audit log. Every sensitive action writes an audit entry in the same
transaction as the change itself, so there is never a change without its record (or a record without its change)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, connection, models, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.choices import AuditAction, Plan, Role, Scope
from accounts.models import (
    ApiKey,
    AuditLog,
    AuditVerification,
    Invitation,
    Membership,
    Organization,
    User,
    hash_secret,
)
from evalence.errors import Conflict, Forbidden, NotFound, ValidationFailed
from evalence.jobs import dispatch, run_job_row

GENESIS_HASH = "0" * 64
API_KEY_PREFIX = "ev_"


# --- audit log ----------------------------------------------------------------------------------------------------


def _canonical_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip.strip()).compressed
    except ValueError:
        return None


def audit_entry_hash(entry: AuditLog) -> str:
    """The hash of an entry's content and its link to the previous entry, in a stable serialization."""
    payload = {
        "organization": str(entry.organization_id) if entry.organization_id else None,
        "sequence": entry.sequence,
        "actor": entry.actor_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target_label": entry.target_label,
        "ip_address": entry.ip_address,
        "data": entry.data,
        "created_at": entry.created_at.astimezone(UTC).isoformat(),
        "prev_hash": entry.prev_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _lock_chain(organization: Organization | None) -> None:
    """Serialize writers of one chain, so two concurrent entries never link to the same predecessor."""
    if connection.vendor == "postgresql":
        key = int(hashlib.sha256(str(organization.pk if organization else "global").encode()).hexdigest()[:15], 16)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    # SQLite: transactions take the write lock up front (transaction_mode=IMMEDIATE), which serializes writers.


@transaction.atomic
def audit_log_write(
    *,
    organization: Organization | None,
    action: str,
    actor: User | None = None,
    target: models.Model | None = None,
    target_label: str = "",
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one entry to the organization's chain (or the global chain when organization is None)."""
    _lock_chain(organization)
    last = (
        AuditLog.objects.filter(organization=organization)
        .order_by("-sequence")
        .values_list("sequence", "entry_hash")
        .first()
    )
    sequence, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    entry = AuditLog(
        organization=organization,
        sequence=sequence,
        actor=actor if actor is not None and actor.pk else None,
        actor_label=(actor.email if actor is not None and actor.pk else "system")[:200],
        action=action,
        target_type=target._meta.label if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:200],
        ip_address=_canonical_ip(ip),
        data=json.loads(json.dumps(data or {}, default=str)),
        prev_hash=prev_hash,
        created_at=timezone.now(),
    )
    entry.entry_hash = audit_entry_hash(entry)
    entry.save(force_insert=True)
    return entry


@dataclass(frozen=True)
class ChainReport:
    organization: Organization | None
    entries_checked: int
    first_broken_sequence: int | None
    problem: str

    @property
    def is_intact(self) -> bool:
        return self.first_broken_sequence is None

    @property
    def chain_label(self) -> str:
        return self.organization.slug if self.organization else "global"


def audit_log_verify(*, organization: Organization | None) -> ChainReport:
    """Walk one chain in order and report the first entry whose link, sequence or content does not hold."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    entries = AuditLog.objects.filter(organization=organization).order_by("sequence")
    for entry in entries.iterator(chunk_size=2000):
        checked += 1
        if entry.sequence != expected_seq:
            return ChainReport(
                organization, checked, expected_seq, f"entry #{expected_seq} is missing (next is #{entry.sequence})"
            )
        if entry.prev_hash != expected_prev:
            return ChainReport(
                organization,
                checked,
                entry.sequence,
                f"entry #{entry.sequence} does not link to entry #{entry.sequence - 1}",
            )
        if audit_entry_hash(entry) != entry.entry_hash:
            return ChainReport(
                organization, checked, entry.sequence, f"entry #{entry.sequence} was modified after it was written"
            )
        expected_prev, expected_seq = entry.entry_hash, expected_seq + 1
    return ChainReport(organization, checked, None, "")


def audit_verification_start(*, organization: Organization, actor: User | None) -> AuditVerification:
    """Queue a background verification of the organization's chain; the row shows progress and the verdict."""
    verification = AuditVerification.objects.create(organization=organization, created_by=actor, queue="default")
    dispatch(audit_verification_run, verification_id=str(verification.pk), organization_id=str(organization.pk))
    return verification


def audit_verification_run(*, verification_id: str, organization_id: str) -> None:
    """Job body: verify the chain and store the verdict on the row."""
    from evalence.events import send_org_event

    verification = AuditVerification.objects.for_org(Organization.objects.get(pk=organization_id)).get(
        pk=verification_id
    )

    def work(row: AuditVerification) -> None:
        report = audit_log_verify(organization=row.organization)
        AuditVerification.objects.filter(pk=row.pk).update(
            entries_checked=report.entries_checked,
            is_intact=report.is_intact,
            first_broken_sequence=report.first_broken_sequence,
            problem=report.problem,
        )

    row = run_job_row(verification, work)
    send_org_event(
        row.organization_id,
        "audit.verification",
        {
            "id": str(row.pk),
            "status": row.status,
            "is_intact": row.is_intact,
            "entries_checked": row.entries_checked,
            "problem": row.problem or row.error,
        },
    )


# --- organizations and users -------------------------------------------------------------------------------------


def _full_clean(instance: models.Model, **kwargs: Any) -> None:
    try:
        instance.full_clean(**kwargs)
    except ValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        first = next(iter(fields.values()))[0]
        raise ValidationFailed(str(first), fields=fields) from None


@transaction.atomic
def organization_create(*, name: str, slug: str, plan: str = Plan.FREE, actor: User | None = None) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise Conflict(f"An organization with slug '{slug}' already exists.", fields={"slug": ["Already taken."]})
    organization = Organization(name=name.strip(), slug=slug, plan=plan)
    _full_clean(organization)
    organization.save()
    audit_log_write(organization=organization, action=AuditAction.ORG_CREATED, actor=actor, target=organization)
    return organization


@transaction.atomic
def organization_update(
    *, organization: Organization, actor: User | None, ip: str | None = None, name: str, plan: str
) -> Organization:
    before = {"name": organization.name, "plan": organization.plan}
    organization.name, organization.plan = name.strip(), plan
    _full_clean(organization)
    organization.save(update_fields=["name", "plan"])
    changes = {k: [before[k], v] for k, v in {"name": organization.name, "plan": plan}.items() if before[k] != v}
    if changes:
        audit_log_write(
            organization=organization,
            action=AuditAction.ORG_UPDATED,
            actor=actor,
            target=organization,
            ip=ip,
            data={"changes": changes},
        )
    return organization


@transaction.atomic
def user_create(
    *,
    email: str,
    password: str | None = None,
    full_name: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
) -> User:
    email = User.objects.normalize_email(email.strip()).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict(f"A user with email {email} already exists.", fields={"email": ["Already registered."]})
    user = User(email=email, full_name=full_name.strip(), is_staff=is_staff, is_superuser=is_superuser)
    _full_clean(user, exclude=["password"])
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), fields={"password": exc.messages}) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


# --- memberships ------------------------------------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed(
            f"Unknown role '{role}'; expected one of {', '.join(Role.values)}.", fields={"role": ["Unknown role."]}
        )


@transaction.atomic
def membership_add(
    *, organization: Organization, user: User, role: str, actor: User | None = None, ip: str | None = None
) -> Membership:
    _check_role(role)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(organization=organization, user=user, role=role)
    except IntegrityError:
        raise Conflict(f"{user.email} is already a member of {organization.name}.") from None
    audit_log_write(
        organization=organization,
        action=AuditAction.MEMBER_ADDED,
        actor=actor,
        target=membership,
        ip=ip,
        target_label=user.email,
        data={"email": user.email, "role": role},
    )
    return membership


def _lock_admins(organization: Organization) -> int:
    """Count admins under a row lock, so two concurrent demotions cannot leave an organization without one."""
    admins = Membership.objects.select_for_update().filter(organization=organization, role=Role.ADMIN)
    return len(list(admins.values_list("pk", flat=True)))


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, actor: User | None, ip: str | None = None
) -> Membership:
    _check_role(role)
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and _lock_admins(membership.organization) <= 1:
        raise Conflict("An organization needs at least one admin; promote someone else first.")
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_log_write(
        organization=membership.organization,
        action=AuditAction.MEMBER_ROLE_CHANGED,
        actor=actor,
        target=membership,
        ip=ip,
        target_label=membership.user.email,
        data={"email": membership.user.email, "from": before, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None, ip: str | None = None) -> None:
    if membership.role == Role.ADMIN and _lock_admins(membership.organization) <= 1:
        raise Conflict("An organization needs at least one admin; promote someone else first.")
    organization, email, role = membership.organization, membership.user.email, membership.role
    audit_log_write(
        organization=organization,
        action=AuditAction.MEMBER_REMOVED,
        actor=actor,
        target=membership,
        ip=ip,
        target_label=email,
        data={"email": email, "role": role},
    )
    membership.delete()


# --- invitations --------------------------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, organization: Organization, email: str, role: str, actor: User | None, ip: str | None = None
) -> tuple[Invitation, str]:
    """Invite an address. Returns the invitation and its token (sent by email, never stored)."""
    _check_role(role)
    email = User.objects.normalize_email(email.strip()).lower()
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member.", fields={"email": ["Already a member."]})
    Invitation.objects.filter(
        organization=organization, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        organization=organization,
        email=email,
        role=role,
        token_hash=hash_secret(token),
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    _full_clean(invitation)
    invitation.save()
    audit_log_write(
        organization=organization,
        action=AuditAction.INVITATION_SENT,
        actor=actor,
        target=invitation,
        ip=ip,
        target_label=email,
        data={"email": email, "role": role},
    )
    link = settings.SITE_URL + reverse("accounts:invitation_accept", kwargs={"token": token})
    inviter = actor.get_full_name() if actor else "An administrator"
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to {organization.name} on Evalence",
            message=(
                f"{inviter} invited you to join {organization.name} on Evalence as {role}.\n\n"
                f"Accept the invitation: {link}\n\nThe link expires in {settings.INVITATION_TTL_DAYS} days."
            ),
            from_email=None,
            recipient_list=[email],
            fail_silently=True,
        )
    )
    return invitation, token


def invitation_for_token(token: str) -> Invitation:
    invitation = Invitation.objects.select_related("organization").filter(token_hash=hash_secret(token)).first()
    if invitation is None or not invitation.is_pending:
        raise NotFound("This invitation link is invalid, expired or already used.")
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, user: User | None = None, password: str | None = None, full_name: str = "", ip: str | None = None
) -> Membership:
    """Accept as the signed-in user, or create the invited address's account with a password."""
    invitation = invitation_for_token(token)
    if user is None:
        existing = User.objects.filter(email__iexact=invitation.email).first()
        if existing is not None:
            raise Forbidden("An account with this address exists; sign in first, then open the link again.")
        if not password:
            raise ValidationFailed("Choose a password.", fields={"password": ["This field is required."]})
        user = user_create(email=invitation.email, password=password, full_name=full_name)
    elif user.email.lower() != invitation.email.lower():
        raise Forbidden(f"This invitation is for {invitation.email}; you are signed in as {user.email}.")
    membership = membership_add(
        organization=invitation.organization, user=user, role=invitation.role, actor=user, ip=ip
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_log_write(
        organization=invitation.organization,
        action=AuditAction.INVITATION_ACCEPTED,
        actor=user,
        target=invitation,
        ip=ip,
        target_label=invitation.email,
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User | None, ip: str | None = None) -> Invitation:
    if not invitation.is_pending:
        raise Conflict("This invitation is no longer pending.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_log_write(
        organization=invitation.organization,
        action=AuditAction.INVITATION_REVOKED,
        actor=actor,
        target=invitation,
        ip=ip,
        target_label=invitation.email,
    )
    return invitation


# --- API keys ----------------------------------------------------------------------------------------------------


def _normalize_scopes(scopes: list[str] | str) -> list[str]:
    if isinstance(scopes, str):
        scopes = [s for s in (part.strip() for part in scopes.split(",")) if s]
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationFailed(
            f"Unknown scope(s): {', '.join(unknown)}; expected any of {', '.join(Scope.values)}.",
            fields={"scopes": [f"Unknown scope: {s}" for s in unknown]},
        )
    if not scopes:
        raise ValidationFailed("Give the key at least one scope.", fields={"scopes": ["At least one scope."]})
    return [s for s in Scope.values if s in set(scopes)]  # canonical order, no repeats


def _new_key_material() -> tuple[str, str]:
    prefix = API_KEY_PREFIX + secrets.token_hex(4)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    name: str,
    scopes: list[str] | str,
    expires_at: datetime | None = None,
    actor: User | None = None,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored."""
    scopes = _normalize_scopes(scopes)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Name the key after what uses it.", fields={"name": ["This field is required."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry must be in the future.", fields={"expires_at": ["Must be in the future."]})
    prefix, secret = _new_key_material()
    key = ApiKey(
        organization=organization,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=scopes,
        expires_at=expires_at,
        created_by=actor,
    )
    _full_clean(key)
    key.save()
    audit_log_write(
        organization=organization,
        action=AuditAction.API_KEY_CREATED,
        actor=actor,
        target=key,
        ip=ip,
        data={"name": name, "prefix": prefix, "scopes": scopes, "expires_at": expires_at},
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None, ip: str | None = None, reason: str = "") -> ApiKey:
    if api_key.revoked_at is not None:
        raise Conflict("This key is already revoked.")
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_log_write(
        organization=api_key.organization,
        action=AuditAction.API_KEY_REVOKED,
        actor=actor,
        target=api_key,
        ip=ip,
        data={"prefix": api_key.prefix, "reason": reason},
    )
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, actor: User | None, ip: str | None = None) -> tuple[ApiKey, str]:
    """Replace a key: a new secret with the same name, scopes and expiry; the old key stops working at once."""
    if not api_key.is_active:
        raise Conflict("Only an active key can be rotated; create a new one instead.")
    prefix, secret = _new_key_material()
    new_key = ApiKey.objects.create(
        organization=api_key.organization,
        name=api_key.name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=api_key.scopes,
        expires_at=api_key.expires_at,
        created_by=actor,
        rotated_from=api_key,
    )
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_log_write(
        organization=api_key.organization,
        action=AuditAction.API_KEY_ROTATED,
        actor=actor,
        target=new_key,
        ip=ip,
        data={"old_prefix": api_key.prefix, "new_prefix": prefix},
    )
    return new_key, secret


@transaction.atomic
def api_key_reset_secret(
    *, api_key: ApiKey, actor: User | None, ip: str | None = None, scopes: list[str] | None = None, reason: str = ""
) -> tuple[ApiKey, str]:
    """A new secret for the same key row (same prefix and name); the old secret stops working at once.

    Used where a fixed key must survive re-runs without piling up revoked rows (the demo seed)."""
    secret = f"{api_key.prefix}_{secrets.token_urlsafe(32)}"
    api_key.secret_hash = hash_secret(secret)
    fields = ["secret_hash"]
    if scopes is not None:
        api_key.scopes = _normalize_scopes(scopes)
        fields.append("scopes")
    api_key.save(update_fields=fields)
    audit_log_write(
        organization=api_key.organization,
        action=AuditAction.API_KEY_ROTATED,
        actor=actor,
        target=api_key,
        ip=ip,
        data={"prefix": api_key.prefix, "in_place": True, "reason": reason},
    )
    return api_key, secret


class InvalidApiKey(Exception):
    """Raised by `api_key_authenticate`; the message is safe to show to the caller."""


def api_key_authenticate(raw: str) -> ApiKey:
    """Find the active key for a presented secret, in constant time against the stored hash."""
    raw = raw.strip()
    if not raw.startswith(API_KEY_PREFIX) or "_" not in raw[len(API_KEY_PREFIX) :]:
        raise InvalidApiKey("Malformed API key.")
    prefix = raw.split("_", 2)[0] + "_" + raw.split("_", 2)[1]
    key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
    if key is None or not secrets.compare_digest(key.secret_hash, hash_secret(raw)):
        raise InvalidApiKey("Invalid API key.")
    if key.revoked_at is not None:
        raise InvalidApiKey("This API key has been revoked.")
    if key.is_expired:
        raise InvalidApiKey("This API key has expired.")
    now = timezone.now()
    resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_S)
    if key.last_used_at is None or now - key.last_used_at >= resolution:
        # At most one write per key per resolution window: the firewall's hot path must not write on every call.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


# --- sign-in events ----------------------------------------------------------------------------------------------


def login_recorded(*, user: User, ip: str | None, succeeded: bool) -> None:
    """Audit a sign-in (or a failed one) in every organization the user belongs to."""
    action = AuditAction.LOGIN if succeeded else AuditAction.LOGIN_FAILED
    organizations = list(Organization.objects.filter(memberships__user=user))
    for organization in organizations or [None]:
        audit_log_write(organization=organization, action=action, actor=user, target=user, ip=ip)


def login_failed_for_unknown(*, email: str, ip: str | None) -> None:
    audit_log_write(organization=None, action=AuditAction.LOGIN_FAILED, ip=ip, data={"email": email[:200]})


def logout_recorded(*, user: User, ip: str | None) -> None:
    for organization in Organization.objects.filter(memberships__user=user):
        audit_log_write(organization=organization, action=AuditAction.LOGOUT, actor=user, target=user, ip=ip)
