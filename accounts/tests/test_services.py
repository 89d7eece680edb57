"""Accounts services: the audit chain, API keys, memberships and invitations."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import services
from accounts.choices import AuditAction, Role, Scope
from accounts.models import ApiKey, AuditLog, Membership
from accounts.tests.factories import ApiKeyFactory, MembershipFactory, UserFactory
from evalence.errors import Conflict, NotFound, ValidationFailed

pytestmark = pytest.mark.django_db


def _entries(org: Any, n: int) -> list[AuditLog]:
    return [services.audit_log_write(organization=org, action=AuditAction.ORG_UPDATED, data={"n": i}) for i in range(n)]


class TestAuditChain:
    def test_each_entry_links_to_the_previous_one_of_its_organization(self, org_a: Any, org_b: Any) -> None:
        a1, a2 = _entries(org_a, 2)
        (b1,) = _entries(org_b, 1)
        assert (a1.sequence, a2.sequence, b1.sequence) == (1, 2, 1)
        assert a1.prev_hash == services.GENESIS_HASH
        assert a2.prev_hash == a1.entry_hash
        assert b1.prev_hash == services.GENESIS_HASH

    def test_an_intact_chain_verifies(self, org_a: Any) -> None:
        _entries(org_a, 5)
        report = services.audit_log_verify(organization=org_a)
        assert report.is_intact
        assert report.entries_checked == 5

    def test_an_edited_entry_is_the_first_broken_link(self, org_a: Any) -> None:
        entries = _entries(org_a, 5)
        AuditLog.objects.filter(pk=entries[2].pk).update(data={"n": 99})
        report = services.audit_log_verify(organization=org_a)
        assert not report.is_intact
        assert report.first_broken_sequence == 3
        assert "modified" in report.problem

    def test_a_deleted_entry_is_reported_as_a_gap(self, org_a: Any) -> None:
        entries = _entries(org_a, 4)
        AuditLog.objects.filter(pk=entries[1].pk).delete()
        report = services.audit_log_verify(organization=org_a)
        assert report.first_broken_sequence == 2
        assert "missing" in report.problem

    def test_a_rewritten_link_is_reported(self, org_a: Any) -> None:
        entries = _entries(org_a, 3)
        AuditLog.objects.filter(pk=entries[2].pk).update(prev_hash="f" * 64)
        report = services.audit_log_verify(organization=org_a)
        assert report.first_broken_sequence == 3
        assert "does not link" in report.problem

    def test_ip_addresses_are_stored_in_canonical_form(self, org_a: Any) -> None:
        entry = services.audit_log_write(organization=org_a, action=AuditAction.LOGIN, ip="2001:0db8:0000::0001")
        assert AuditLog.objects.get(pk=entry.pk).ip_address == "2001:db8::1"
        assert services.audit_log_verify(organization=org_a).is_intact


class TestApiKeys:
    def test_the_secret_is_returned_once_and_only_its_hash_is_stored(self, org_a: Any) -> None:
        key, secret = services.api_key_create(organization=org_a, name="ci", scopes="read,testing:run")
        assert secret.startswith(key.prefix + "_")
        stored = ApiKey.objects.get(pk=key.pk)
        assert secret not in str(stored.__dict__)
        assert stored.scopes == ["testing:run", "read"]
        assert services.api_key_authenticate(secret) == stored

    def test_it_rejects_a_wrong_secret_with_a_known_prefix(self, org_a: Any) -> None:
        _, secret = services.api_key_create(organization=org_a, name="ci", scopes=["read"])
        with pytest.raises(services.InvalidApiKey, match="Invalid"):
            services.api_key_authenticate(secret[:-2] + "xx")

    @pytest.mark.parametrize("raw", ["", "nope", "ev_", "Bearer ev_x", "ev_zzzz"])
    def test_it_rejects_malformed_keys(self, raw: str, org_a: Any) -> None:
        with pytest.raises(services.InvalidApiKey):
            services.api_key_authenticate(raw)

    def test_it_rejects_a_revoked_key(self, org_a: Any) -> None:
        key, secret = services.api_key_create(organization=org_a, name="ci", scopes=["read"])
        services.api_key_revoke(api_key=key, actor=None)
        with pytest.raises(services.InvalidApiKey, match="revoked"):
            services.api_key_authenticate(secret)

    def test_it_refuses_unknown_scopes_and_past_expiry(self, org_a: Any) -> None:
        with pytest.raises(ValidationFailed, match="Unknown scope"):
            services.api_key_create(organization=org_a, name="ci", scopes=["admin"])
        with pytest.raises(ValidationFailed, match="future"):
            services.api_key_create(
                organization=org_a, name="ci", scopes=["read"], expires_at=timezone.now() - timedelta(days=1)
            )

    def test_rotation_issues_a_new_secret_and_retires_the_old_one(self, org_a: Any, alice: Any) -> None:
        key, old_secret = services.api_key_create(organization=org_a, name="ci", scopes=[Scope.READ])
        new_key, new_secret = services.api_key_rotate(api_key=key, actor=alice)
        assert new_key.rotated_from == key and new_key.scopes == key.scopes and new_key.name == "ci"
        assert services.api_key_authenticate(new_secret) == new_key
        with pytest.raises(services.InvalidApiKey):
            services.api_key_authenticate(old_secret)
        actions = list(AuditLog.objects.for_org(org_a).values_list("action", flat=True))
        assert AuditAction.API_KEY_ROTATED in actions

    def test_last_used_is_written_at_most_once_per_window(self, org_a: Any, settings: Any) -> None:
        settings.API_KEY_LAST_USED_RESOLUTION_S = 3600
        key, secret = services.api_key_create(organization=org_a, name="ci", scopes=["read"])
        first = services.api_key_authenticate(secret).last_used_at
        assert first is not None
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(seconds=10))
        services.api_key_authenticate(secret)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == first - timedelta(seconds=10)

    def test_creation_and_revocation_are_audited(self, org_a: Any, alice: Any) -> None:
        key = ApiKeyFactory(organization=org_a)
        services.api_key_revoke(api_key=key, actor=alice, ip="10.0.0.1")
        entry = AuditLog.objects.for_org(org_a).get(action=AuditAction.API_KEY_REVOKED)
        assert entry.actor == alice and entry.ip_address == "10.0.0.1" and entry.target_id == str(key.pk)


class TestMemberships:
    def test_the_last_admin_cannot_be_demoted_or_removed(self, org_a: Any, alice: Any) -> None:
        membership = Membership.objects.get(organization=org_a, user=alice)
        with pytest.raises(Conflict, match="at least one admin"):
            services.membership_change_role(membership=membership, role=Role.VIEWER, actor=alice)
        with pytest.raises(Conflict):
            services.membership_remove(membership=membership, actor=alice)
        assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN

    def test_an_admin_can_step_down_when_another_admin_exists(self, org_a: Any, alice: Any) -> None:
        MembershipFactory(organization=org_a, user=UserFactory(), role=Role.ADMIN)
        membership = Membership.objects.get(organization=org_a, user=alice)
        services.membership_change_role(membership=membership, role=Role.ANALYST, actor=alice)
        entry = AuditLog.objects.for_org(org_a).get(action=AuditAction.MEMBER_ROLE_CHANGED)
        assert entry.data == {"email": alice.email, "from": "admin", "to": "analyst"}

    def test_roles_are_ordered(self, org_a: Any, bob: Any) -> None:
        membership = Membership.objects.get(user=bob)
        assert membership.has_role(Role.VIEWER) and not membership.has_role(Role.ANALYST)


class TestInvitations:
    def test_an_invitation_is_emailed_and_accepted_once(
        self, org_a: Any, alice: Any, mailoutbox: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            invitation, token = services.invitation_create(
                organization=org_a, email="New@Example.test", role=Role.ANALYST, actor=alice
            )
        assert invitation.email == "new@example.test"
        assert len(mailoutbox) == 1 and token in mailoutbox[0].body
        membership = services.invitation_accept(token=token, password="a-long-enough-passphrase")
        assert membership.role == Role.ANALYST and membership.user.email == "new@example.test"
        with pytest.raises(NotFound):
            services.invitation_accept(token=token, password="a-long-enough-passphrase")

    def test_an_invitation_for_a_member_is_refused(self, org_a: Any, alice: Any, bob: Any) -> None:
        with pytest.raises(Conflict, match="already a member"):
            services.invitation_create(organization=org_a, email=bob.email, role=Role.VIEWER, actor=alice)

    def test_a_weak_password_is_refused_and_nothing_is_created(self, org_a: Any, alice: Any) -> None:
        _, token = services.invitation_create(organization=org_a, email="w@example.test", role="viewer", actor=alice)
        with pytest.raises(ValidationFailed):
            services.invitation_accept(token=token, password="123")
        assert not Membership.objects.filter(user__email="w@example.test").exists()
