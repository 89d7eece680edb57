"""Account pages: sign-in, the organization switcher, invitations, members, API keys and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.choices import AuditAction, Role, Scope
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership, User
from accounts.tests.factories import AuditLogFactory, InvitationFactory, MembershipFactory, UserFactory
from accounts.views import NEW_KEY_SESSION_KEY
from conftest import PASSWORD
from evalence.jobs import JobStatus
from evalence.tenancy import SESSION_ORG_KEY

pytestmark = pytest.mark.django_db

ORG_API = "/api/v1/accounts/organization/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_status(secret: str) -> int:
    """What the API answers a fresh client presenting this secret."""
    return Client().get(ORG_API, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def invited(org_a: Any, alice: Any) -> tuple[Invitation, str]:
    """A pending invitation to organization A for an address with no account, and its token."""
    return services.invitation_create(organization=org_a, email="dave@acme.test", role=Role.ANALYST, actor=alice)


# --- signing in and out ------------------------------------------------------------------------------------------


def test_it_signs_in_with_email_and_password_and_audits_it(client: Client, org_a: Any, alice: Any) -> None:
    response = client.post(reverse("accounts:login"), {"username": "Alice@acme.test", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("analytics:overview")
    assert client.get(reverse("analytics:overview")).status_code == 200
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.LOGIN, actor=alice).exists()


def test_it_follows_a_safe_next_after_sign_in(client: Client, alice: Any) -> None:
    members = reverse("accounts:members")

    response = client.post(reverse("accounts:login"), {"username": alice.email, "password": PASSWORD, "next": members})

    assert response["Location"] == members


def test_it_shows_a_form_error_for_a_wrong_password(client: Client, org_a: Any, alice: Any) -> None:
    response = client.post(reverse("accounts:login"), {"username": alice.email, "password": "wrong-password"})

    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.LOGIN_FAILED).exists()


def test_it_signs_out_only_on_post(alice: Any) -> None:
    client = signed_in(alice)

    assert client.get(reverse("accounts:logout")).status_code == 405
    assert "_auth_user_id" in client.session

    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


# --- the organization switcher -----------------------------------------------------------------------------------


def test_it_switches_to_another_organization_of_the_user(org_a: Any, org_b: Any, alice: Any) -> None:
    MembershipFactory(organization=org_b, user=alice, role=Role.VIEWER)
    client = signed_in(alice)
    page = client.get(reverse("accounts:members"))
    assert 'name="organization"' in page.content.decode()  # the switcher shows for a user of two organizations

    response = client.post(
        reverse("accounts:org_switch"), {"organization": org_b.slug, "next": reverse("accounts:members")}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:members")
    assert client.session[SESSION_ORG_KEY] == str(org_b.pk)
    assert client.get(reverse("accounts:members")).context["organization"] == org_b


def test_it_refuses_to_switch_to_an_organization_the_user_is_not_in(org_a: Any, org_b: Any, alice: Any) -> None:
    client = signed_in(alice)

    response = client.post(reverse("accounts:org_switch"), {"organization": org_b.slug})

    assert response.status_code == 404
    assert SESSION_ORG_KEY not in client.session


def test_it_ignores_an_unsafe_next_when_switching(org_a: Any, alice: Any) -> None:
    response = signed_in(alice).post(
        reverse("accounts:org_switch"), {"organization": org_a.slug, "next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("analytics:overview")


# --- members and invitations -------------------------------------------------------------------------------------


def test_it_lists_members_read_only_for_a_viewer(org_a: Any, alice: Any, bob: Any, carol: Any) -> None:
    response = signed_in(bob).get(reverse("accounts:members"))
    html = response.content.decode()

    assert response.status_code == 200
    for user in (alice, bob, carol):
        assert user.email in html
    assert reverse("accounts:member_role", args=[alice.memberships.get().pk]) not in html
    assert "Send invitation" not in html


def test_it_shows_an_admin_the_management_forms(org_a: Any, alice: Any, bob: Any) -> None:
    html = signed_in(alice).get(reverse("accounts:members")).content.decode()
    membership = bob.memberships.get()

    assert reverse("accounts:member_role", args=[membership.pk]) in html
    assert reverse("accounts:member_remove", args=[membership.pk]) in html
    assert "data-confirm" in html
    assert "Send invitation" in html


def test_it_invites_someone_by_email(org_a: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> None:
    client = signed_in(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:members"), {"email": "Dave@Acme.test", "role": Role.ANALYST})

    assert response.status_code == 302
    invitation = Invitation.objects.get(organization=org_a)
    assert (invitation.email, invitation.role) == ("dave@acme.test", Role.ANALYST)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["dave@acme.test"]
    assert "/invite/" in mail.outbox[0].body
    page = client.get(reverse("accounts:members")).content.decode()
    assert "dave@acme.test" in page
    assert reverse("accounts:invitation_revoke", args=[invitation.pk]) in page


def test_it_shows_the_service_error_when_inviting_a_member(org_a: Any, alice: Any, bob: Any) -> None:
    response = signed_in(alice).post(reverse("accounts:members"), {"email": bob.email, "role": Role.VIEWER})

    assert response.status_code == 200
    assert "Already a member." in response.content.decode()
    assert not Invitation.objects.exists()


def test_it_shows_inline_errors_for_an_invalid_invitation(org_a: Any, alice: Any) -> None:
    response = signed_in(alice).post(reverse("accounts:members"), {"email": "not-an-address", "role": "owner"})

    html = response.content.decode()
    assert "Enter a valid email address." in html
    assert "Select a valid choice." in html
    assert not Invitation.objects.exists()


def test_it_changes_a_role(org_a: Any, alice: Any, bob: Any) -> None:
    membership = bob.memberships.get()

    response = signed_in(alice).post(reverse("accounts:member_role", args=[membership.pk]), {"role": Role.ANALYST})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ANALYST
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.MEMBER_ROLE_CHANGED).exists()


def test_it_removes_a_member(org_a: Any, alice: Any, bob: Any) -> None:
    membership = bob.memberships.get()

    response = signed_in(alice).post(reverse("accounts:member_remove", args=[membership.pk]), follow=True)

    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert f"{bob.email} was removed" in " ".join(messages_of(response))


def test_it_does_not_demote_the_last_admin(org_a: Any, alice: Any, bob: Any) -> None:
    membership = alice.memberships.get()

    response = signed_in(alice).post(
        reverse("accounts:member_role", args=[membership.pk]), {"role": Role.VIEWER}, follow=True
    )

    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert "at least one admin" in response.content.decode()


def test_it_does_not_remove_the_last_admin(org_a: Any, alice: Any) -> None:
    membership = alice.memberships.get()

    response = signed_in(alice).post(reverse("accounts:member_remove", args=[membership.pk]), follow=True)

    assert Membership.objects.filter(pk=membership.pk).exists()
    assert "at least one admin" in response.content.decode()


def test_it_rejects_an_unknown_role(org_a: Any, alice: Any, bob: Any) -> None:
    membership = bob.memberships.get()

    response = signed_in(alice).post(
        reverse("accounts:member_role", args=[membership.pk]), {"role": "owner"}, follow=True
    )

    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    assert "Choose one of the roles" in response.content.decode()


def test_it_revokes_an_invitation(org_a: Any, alice: Any, invited: tuple[Invitation, str]) -> None:
    invitation, token = invited

    response = signed_in(alice).post(reverse("accounts:invitation_revoke", args=[invitation.pk]))

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert Client().get(reverse("accounts:invitation_accept", args=[token])).status_code == 404


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("accounts:member_role", {"role": Role.ADMIN}),
        ("accounts:member_remove", {}),
        ("accounts:invitation_revoke", {}),
        ("accounts:members", {"email": "eve@acme.test", "role": Role.ADMIN}),
        ("accounts:organization", {"name": "Taken over", "plan": "enterprise"}),
        ("accounts:api_keys", {"name": "mine", "scopes": [Scope.READ]}),
        ("accounts:audit_verify", {}),
    ],
)
def test_it_forbids_a_viewer_to_manage_the_organization(
    org_a: Any, alice: Any, bob: Any, invited: tuple[Invitation, str], url_name: str, data: dict[str, Any]
) -> None:
    targets = {
        "accounts:member_role": [alice.memberships.get().pk],
        "accounts:member_remove": [alice.memberships.get().pk],
        "accounts:invitation_revoke": [invited[0].pk],
    }
    client = signed_in(bob)  # signing in is audited too: count after it
    audit_entries = AuditLog.objects.count()

    response = client.post(reverse(url_name, args=targets.get(url_name, [])), data)

    assert response.status_code == 403
    assert "You do not have access" in response.content.decode()
    assert AuditLog.objects.count() == audit_entries  # nothing happened, so nothing was recorded
    assert Membership.objects.get(user=alice).role == Role.ADMIN
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1
    org_a.refresh_from_db()
    assert org_a.name == "Acme"
    assert not ApiKey.objects.exists()
    assert not AuditVerification.objects.exists()


@pytest.mark.parametrize("url_name", ["accounts:api_keys", "accounts:audit_log"])
def test_it_shows_the_api_keys_and_audit_log_to_admins_only(
    org_a: Any, alice: Any, bob: Any, carol: Any, url_name: str
) -> None:
    assert signed_in(alice).get(reverse(url_name)).status_code == 200
    assert signed_in(carol).get(reverse(url_name)).status_code == 403
    assert signed_in(bob).get(reverse(url_name)).status_code == 403


def test_it_hides_admin_links_from_a_viewer(org_a: Any, alice: Any, bob: Any) -> None:
    viewer_page = signed_in(bob).get(reverse("accounts:members")).content.decode()
    admin_page = signed_in(alice).get(reverse("accounts:members")).content.decode()

    assert reverse("accounts:api_keys") not in viewer_page
    assert reverse("accounts:audit_log") not in viewer_page
    assert reverse("accounts:api_keys") in admin_page
    assert reverse("accounts:audit_log") in admin_page


# --- organization ------------------------------------------------------------------------------------------------


def test_it_lets_an_admin_rename_the_organization(org_a: Any, alice: Any) -> None:
    response = signed_in(alice).post(reverse("accounts:organization"), {"name": "Acme Labs", "plan": "team"})

    assert response.status_code == 302
    org_a.refresh_from_db()
    assert (org_a.name, org_a.plan) == ("Acme Labs", "team")
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.ORG_UPDATED).exists()


def test_it_shows_the_organization_read_only_to_a_viewer(org_a: Any, bob: Any) -> None:
    response = signed_in(bob).get(reverse("accounts:organization"))

    assert response.status_code == 200
    assert response.context["form"].fields["name"].disabled
    assert "Save changes" not in response.content.decode()


# --- API keys ----------------------------------------------------------------------------------------------------


def create_key(client: Client, **data: Any) -> Any:
    payload = {"name": "support-bot", "scopes": [Scope.READ, Scope.FIREWALL_EVALUATE], **data}
    return client.post(reverse("accounts:api_keys"), payload, follow=True)


def test_it_shows_a_new_key_secret_exactly_once(org_a: Any, alice: Any) -> None:
    client = signed_in(alice)

    response = create_key(client)

    key = ApiKey.objects.get(organization=org_a)
    secret = response.context["new_key"]["secret"]
    html = response.content.decode()
    assert secret.startswith(key.prefix)
    assert secret in html
    assert "only time it is shown" in html
    assert 'data-copy-target="#new-key-secret"' in html
    assert "no-store" in response["Cache-Control"]
    assert NEW_KEY_SESSION_KEY not in client.session

    again = client.get(reverse("accounts:api_keys")).content.decode()

    assert secret not in again
    assert key.prefix in again
    assert api_status(secret) == 200
    assert key.scopes == [Scope.FIREWALL_EVALUATE, Scope.READ]


def test_it_sets_the_expiry_at_the_end_of_the_chosen_day(org_a: Any, alice: Any) -> None:
    day = timezone.localdate() + timedelta(days=30)

    create_key(signed_in(alice), expires_on=day.isoformat())

    key = ApiKey.objects.get(organization=org_a)
    assert timezone.localtime(key.expires_at).date() == day + timedelta(days=1)


def test_it_shows_inline_errors_for_an_invalid_key(org_a: Any, alice: Any) -> None:
    response = create_key(signed_in(alice), name="", scopes=[], expires_on="2000-01-01")

    html = response.content.decode()
    assert "This field is required." in html
    assert "Give the key at least one scope." in html
    assert "Choose today or a later day." in html
    assert not ApiKey.objects.exists()


def test_it_rotates_a_key_and_the_old_secret_stops_working(org_a: Any, alice: Any, key_a: tuple[ApiKey, str]) -> None:
    key, old_secret = key_a
    client = signed_in(alice)
    assert api_status(old_secret) == 200

    response = client.post(reverse("accounts:api_key_rotate", args=[key.pk]), follow=True)

    new_secret = response.context["new_key"]["secret"]
    assert new_secret != old_secret
    assert new_secret in response.content.decode()
    assert api_status(old_secret) == 401
    assert api_status(new_secret) == 200
    assert new_secret not in client.get(reverse("accounts:api_keys")).content.decode()


def test_it_revokes_a_key(org_a: Any, alice: Any, key_a: tuple[ApiKey, str]) -> None:
    key, secret = key_a

    response = signed_in(alice).post(reverse("accounts:api_key_revoke", args=[key.pk]), follow=True)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_status(secret) == 401
    assert "Revoked" in response.content.decode()


def test_it_reports_rotating_a_revoked_key_as_an_error(org_a: Any, alice: Any, key_a: tuple[ApiKey, str]) -> None:
    key, _secret = key_a
    services.api_key_revoke(api_key=key, actor=alice)

    response = signed_in(alice).post(reverse("accounts:api_key_rotate", args=[key.pk]), follow=True)

    assert "Only an active key can be rotated" in response.content.decode()
    assert ApiKey.objects.filter(organization=org_a).count() == 1


# --- another organization's objects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name",
    [
        "accounts:member_role",
        "accounts:member_remove",
        "accounts:invitation_revoke",
        "accounts:api_key_rotate",
        "accounts:api_key_revoke",
    ],
)
def test_it_gives_another_organization_404_for_these_objects(
    org_a: Any,
    alice: Any,
    bob: Any,
    charlie: Any,
    invited: tuple[Invitation, str],
    key_a: tuple[ApiKey, str],
    url_name: str,
) -> None:
    objects = {
        "accounts:member_role": bob.memberships.get(),
        "accounts:member_remove": bob.memberships.get(),
        "accounts:invitation_revoke": invited[0],
        "accounts:api_key_rotate": key_a[0],
        "accounts:api_key_revoke": key_a[0],
    }
    audit_entries = AuditLog.objects.filter(organization=org_a).count()

    response = signed_in(charlie).post(reverse(url_name, args=[objects[url_name].pk]), {"role": Role.ADMIN})

    assert response.status_code == 404
    assert AuditLog.objects.filter(organization=org_a).count() == audit_entries
    assert Membership.objects.get(user=bob).role == Role.VIEWER
    invited[0].refresh_from_db()
    key_a[0].refresh_from_db()
    assert invited[0].revoked_at is None
    assert key_a[0].is_active
    assert api_status(key_a[1]) == 200


def test_it_shows_no_other_organizations_ids_on_pages(
    org_a: Any, alice: Any, bob: Any, charlie: Any, invited: tuple[Invitation, str], key_a: tuple[ApiKey, str]
) -> None:
    AuditLogFactory(organization=org_a)
    services.audit_verification_start(organization=org_a, actor=alice)
    foreign_ids = {
        str(pk)
        for model in (Membership, Invitation, ApiKey, AuditLog, AuditVerification)
        for pk in model.objects.filter(organization=org_a).values_list("pk", flat=True)
    }
    client = signed_in(charlie)

    for url_name in ("accounts:organization", "accounts:members", "accounts:api_keys", "accounts:audit_log"):
        html = client.get(reverse(url_name)).content.decode()
        assert not [pk for pk in foreign_ids if pk in html], url_name
        assert str(org_a.pk) not in html


# --- invitations -------------------------------------------------------------------------------------------------


def test_it_creates_the_account_of_a_new_invitee_and_signs_them_in(
    client: Client, org_a: Any, invited: tuple[Invitation, str]
) -> None:
    url = reverse("accounts:invitation_accept", args=[invited[1]])
    page = client.get(url)
    assert "Acme" in page.content.decode()
    assert "Analyst" in page.content.decode()

    response = client.post(
        url, {"full_name": "Dave Doe", "password": "a-long-new-passphrase", "password_confirm": "a-long-new-passphrase"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("analytics:overview")
    user = User.objects.get(email="dave@acme.test")
    assert user.full_name == "Dave Doe"
    assert user.check_password("a-long-new-passphrase")
    assert Membership.objects.get(organization=org_a, user=user).role == Role.ANALYST
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.get(reverse("accounts:members")).status_code == 200
    assert AuditLog.objects.filter(organization=org_a, action=AuditAction.INVITATION_ACCEPTED).exists()


def test_it_shows_form_errors_for_a_weak_or_mismatched_password(
    client: Client, org_a: Any, invited: tuple[Invitation, str]
) -> None:
    url = reverse("accounts:invitation_accept", args=[invited[1]])

    mismatch = client.post(url, {"password": "a-long-new-passphrase", "password_confirm": "something-else-entirely"})
    weak = client.post(url, {"password": "password", "password_confirm": "password"})

    assert "The two passwords differ." in mismatch.content.decode()
    assert "too common" in weak.content.decode()
    assert not User.objects.filter(email="dave@acme.test").exists()


def test_it_asks_an_existing_account_to_sign_in_first(client: Client, alice: Any, charlie: Any, org_b: Any) -> None:
    _invitation, token = services.invitation_create(
        organization=org_b, email=alice.email, role=Role.VIEWER, actor=charlie
    )
    url = reverse("accounts:invitation_accept", args=[token])

    html = client.get(url).content.decode()

    assert "already exists" in html
    assert f"{reverse('accounts:login')}?next={url}" in html
    client.post(url, {"password": "a-long-new-passphrase", "password_confirm": "a-long-new-passphrase"})
    assert not Membership.objects.filter(organization=org_b, user=alice).exists()


def test_it_lets_the_signed_in_invitee_accept(alice: Any, charlie: Any, org_b: Any) -> None:
    _invitation, token = services.invitation_create(
        organization=org_b, email=alice.email, role=Role.VIEWER, actor=charlie
    )
    client = signed_in(alice)
    url = reverse("accounts:invitation_accept", args=[token])
    assert "Accept and join Globex" in client.get(url).content.decode()

    response = client.post(url)

    assert response.status_code == 302
    assert Membership.objects.get(organization=org_b, user=alice).role == Role.VIEWER
    assert client.session[SESSION_ORG_KEY] == str(org_b.pk)


def test_it_tells_someone_signed_in_as_another_address_to_sign_out(
    org_a: Any, bob: Any, invited: tuple[Invitation, str]
) -> None:
    client = signed_in(bob)
    url = reverse("accounts:invitation_accept", args=[invited[1]])

    html = client.get(url).content.decode()
    client.post(url)

    assert "Sign out, then open the link again" in html
    assert not User.objects.filter(email="dave@acme.test").exists()
    assert Membership.objects.filter(organization=org_a).count() == 2


def test_it_gives_404_for_an_expired_or_unknown_invitation(client: Client, org_a: Any) -> None:
    token = "expired-invitation-token"
    InvitationFactory(
        organization=org_a,
        token_hash=services.hash_secret(token),
        expires_at=timezone.now() - timedelta(minutes=1),
    )

    expired = client.get(reverse("accounts:invitation_accept", args=[token]))
    unknown = client.post(reverse("accounts:invitation_accept", args=["no-such-token"]), {"password": "x"})

    assert expired.status_code == 404
    assert "invalid, expired or already used" in expired.content.decode()
    assert unknown.status_code == 404
    assert not User.objects.filter(email__startswith="invitee").exists()


# --- audit log ---------------------------------------------------------------------------------------------------


def test_it_filters_the_audit_log_by_action(org_a: Any, alice: Any, bob: Any) -> None:
    services.membership_change_role(membership=bob.memberships.get(), role=Role.ANALYST, actor=alice)
    AuditLogFactory(organization=org_a, action=AuditAction.ORG_UPDATED, data={"marker": "org-updated"})
    client = signed_in(alice)

    everything = client.get(reverse("accounts:audit_log"))
    filtered = client.get(reverse("accounts:audit_log"), {"action": AuditAction.MEMBER_ROLE_CHANGED})

    assert "org-updated" in everything.content.decode()
    entries = list(filtered.context["page_obj"])
    assert entries
    assert {entry.action for entry in entries} == {AuditAction.MEMBER_ROLE_CHANGED}
    assert "org-updated" not in filtered.content.decode()


def test_it_shows_a_filter_error_inline(org_a: Any, alice: Any) -> None:
    response = signed_in(alice).get(reverse("accounts:audit_log"), {"action": "nonsense"})

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()


def test_it_paginates_the_audit_log(org_a: Any, alice: Any) -> None:
    for _ in range(55):
        AuditLogFactory(organization=org_a)
    client = signed_in(alice)

    first = client.get(reverse("accounts:audit_log"))
    second = client.get(reverse("accounts:audit_log"), {"page": 2})

    assert len(first.context["page_obj"]) == 50
    assert "?page=2" in first.content.decode()
    assert len(second.context["page_obj"]) == first.context["page_obj"].paginator.count - 50


def test_it_verifies_the_audit_chain(
    org_a: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any, run_jobs: Any
) -> None:
    client = signed_in(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:audit_verify"))
    run_jobs()

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:audit_log")
    verification = AuditVerification.objects.get(organization=org_a)
    assert verification.status == JobStatus.SUCCEEDED
    assert verification.is_intact is True
    assert verification.entries_checked == AuditLog.objects.filter(organization=org_a).count()
    html = client.get(reverse("accounts:audit_log")).content.decode()
    assert "Intact" in html
    assert f'data-verification-id="{verification.pk}"' in html


def test_it_marks_a_running_verification_for_live_updates(org_a: Any, alice: Any) -> None:
    verification = services.audit_verification_start(organization=org_a, actor=alice)  # no commit: stays queued

    html = signed_in(alice).get(reverse("accounts:audit_log")).content.decode()

    assert 'data-status="queued"' in html
    assert reverse("api:auditverification-detail", args=[verification.pk]) in html
    assert "evalence.js" in html


# --- every page --------------------------------------------------------------------------------------------------


PAGES = [
    "analytics:overview",
    "promptbank:index",
    "firewall:index",
    "testing:index",
    "accounts:settings",
    "accounts:organization",
    "accounts:members",
    "accounts:api_keys",
    "accounts:audit_log",
]


@pytest.mark.parametrize("url_name", PAGES)
def test_it_sends_anonymous_visitors_to_sign_in(client: Client, url_name: str) -> None:
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize("url_name", ["accounts:org_switch", "accounts:audit_verify"])
def test_it_sends_anonymous_posts_to_sign_in(client: Client, url_name: str) -> None:
    response = client.post(reverse(url_name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_it_redirects_settings_to_members(org_a: Any, bob: Any) -> None:
    response = signed_in(bob).get(reverse("accounts:settings"))

    assert response["Location"] == reverse("accounts:members")


def test_it_explains_a_missing_organization(db: Any) -> None:
    loner = UserFactory(email="loner@example.test", password=PASSWORD)

    response = signed_in(loner).get(reverse("analytics:overview"))

    assert response.status_code == 403
    assert "not in an organization yet" in response.content.decode()


def test_it_renders_the_html_404_page(org_a: Any, bob: Any) -> None:
    response = signed_in(bob).get("/no-such-page/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
