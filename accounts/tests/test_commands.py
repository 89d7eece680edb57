"""The management commands that scripts and CI rely on: names, flags, output and exit behaviour."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts import services
from accounts.choices import AuditAction, Role, Scope
from accounts.models import ApiKey, AuditLog, Membership, Organization, User
from accounts.tests.factories import AuditLogFactory, OrganizationFactory, UserFactory
from promptbank.models import Prompt

pytestmark = pytest.mark.django_db


def run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


# --- create_org ---------------------------------------------------------------------------------------------------


def test_create_org_creates_the_organization_and_prints_it() -> None:
    output = run("create_org", "--name", "Acme", "--slug", "acme", "--plan", "team")

    organization = Organization.objects.get(slug="acme")
    assert (organization.name, organization.plan) == ("Acme", "team")
    assert "Acme" in output
    assert "acme" in output
    assert AuditLog.objects.filter(organization=organization, action=AuditAction.ORG_CREATED).exists()


def test_create_org_refuses_a_taken_slug_in_one_line(org_a: Organization) -> None:
    with pytest.raises(CommandError, match="already exists") as excinfo:
        run("create_org", "--name", "Other", "--slug", "acme")
    assert "\n" not in str(excinfo.value)


def test_create_org_refuses_an_invalid_slug() -> None:
    with pytest.raises(CommandError):
        run("create_org", "--name", "Bad", "--slug", "Not A Slug")
    assert not Organization.objects.exists()


def test_create_org_refuses_an_unknown_plan() -> None:
    with pytest.raises(CommandError, match="plan"):
        run("create_org", "--name", "Acme", "--slug", "acme", "--plan", "platinum")


# --- create_user --------------------------------------------------------------------------------------------------


def test_create_user_creates_a_member_who_can_sign_in(org_a: Organization) -> None:
    password = "a-long-and-unusual-passphrase"
    output = run(
        "create_user",
        "--email",
        "Ana@Example.com",
        "--org",
        "acme",
        "--role",
        "admin",
        "--password",
        password,
        "--name",
        "Ana Lyst",
    )

    user = User.objects.get(email="ana@example.com")
    assert user.full_name == "Ana Lyst"
    assert Membership.objects.get(user=user, organization=org_a).role == Role.ADMIN
    assert "ana@example.com" in output
    assert Client().login(username="ana@example.com", password=password)


def test_create_user_reads_the_password_from_the_environment(org_a: Organization, monkeypatch: Any) -> None:
    monkeypatch.setenv("EVALENCE_USER_PASSWORD", "from-the-environment-please")
    run("create_user", "--email", "env@example.com", "--org", "acme", "--role", "viewer")

    assert Client().login(username="env@example.com", password="from-the-environment-please")


def test_create_user_without_a_password_makes_an_account_that_cannot_sign_in_yet(
    org_a: Organization, monkeypatch: Any
) -> None:
    monkeypatch.delenv("EVALENCE_USER_PASSWORD", raising=False)
    output = run("create_user", "--email", "nopass@example.com", "--org", "acme", "--role", "analyst")

    user = User.objects.get(email="nopass@example.com")
    assert not user.has_usable_password()
    assert "changepassword" in output


def test_create_user_marks_staff_and_superusers(org_a: Organization) -> None:
    run(
        "create_user",
        "--email",
        "root@example.com",
        "--org",
        "acme",
        "--role",
        "admin",
        "--password",
        "a-long-and-unusual-passphrase",
        "--superuser",
    )
    user = User.objects.get(email="root@example.com")
    assert user.is_staff
    assert user.is_superuser


def test_create_user_adds_an_existing_user_to_another_organization(org_a: Organization, org_b: Organization) -> None:
    user = UserFactory(email="dana@example.com", password="the-original-passphrase")
    Membership.objects.create(organization=org_a, user=user, role=Role.VIEWER)

    output = run(
        "create_user",
        "--email",
        "dana@example.com",
        "--org",
        "globex",
        "--role",
        "analyst",
        "--password",
        "ignored-for-existing-users",
    )

    assert Membership.objects.get(user=user, organization=org_b).role == Role.ANALYST
    assert User.objects.filter(email="dana@example.com").count() == 1
    assert "unchanged" in output
    assert Client().login(username="dana@example.com", password="the-original-passphrase")


def test_create_user_refuses_an_existing_member(alice: User) -> None:
    with pytest.raises(CommandError, match="already a member"):
        run("create_user", "--email", alice.email, "--org", "acme", "--role", "viewer")


def test_create_user_refuses_an_unknown_organization() -> None:
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        run("create_user", "--email", "x@example.com", "--org", "nope", "--role", "viewer")


def test_create_user_refuses_a_weak_password_and_creates_nothing(org_a: Organization) -> None:
    with pytest.raises(CommandError):
        run("create_user", "--email", "weak@example.com", "--org", "acme", "--role", "viewer", "--password", "123")
    assert not User.objects.filter(email="weak@example.com").exists()


# --- create_api_key -----------------------------------------------------------------------------------------------


def test_create_api_key_prints_a_secret_that_authenticates_on_the_last_line(org_a: Organization) -> None:
    output = run("create_api_key", "--org", "acme", "--name", "ci", "--scopes", "firewall:evaluate,testing:run,read")

    secret = output.rstrip("\n").splitlines()[-1]
    key = services.api_key_authenticate(secret)
    assert key.organization == org_a
    assert key.name == "ci"
    assert key.scopes == [Scope.FIREWALL_EVALUATE, Scope.TESTING_RUN, Scope.READ]
    assert key.expires_at is None
    assert all(secret not in line for line in output.splitlines()[:-1])


def test_create_api_key_sets_an_expiry(org_a: Organization) -> None:
    output = run("create_api_key", "--org", "acme", "--name", "ci", "--scopes", "read", "--expires-in-days", "30")

    key = services.api_key_authenticate(output.strip().splitlines()[-1])
    assert key.expires_at is not None


def test_create_api_key_refuses_an_unknown_scope(org_a: Organization) -> None:
    with pytest.raises(CommandError, match="Unknown scope"):
        run("create_api_key", "--org", "acme", "--name", "ci", "--scopes", "read,admin:everything")
    assert not ApiKey.objects.exists()


def test_create_api_key_refuses_a_non_positive_expiry(org_a: Organization) -> None:
    with pytest.raises(CommandError, match="positive"):
        run("create_api_key", "--org", "acme", "--name", "ci", "--scopes", "read", "--expires-in-days", "0")


# --- seed_demo ----------------------------------------------------------------------------------------------------


def _counts() -> dict[str, int]:
    return {
        "organizations": Organization.objects.count(),
        "users": User.objects.count(),
        "memberships": Membership.objects.count(),
        "api_keys": ApiKey.objects.count(),
    }


def _printed(output: str, label: str) -> str:
    line = next(line for line in output.splitlines() if line.strip().startswith(label))
    return line.strip()[len(label) :].strip()


def test_seed_demo_is_idempotent_and_its_printed_credentials_work() -> None:
    run("seed_demo")
    first = _counts()
    output = run("seed_demo")

    assert _counts() == first
    # The demo key, and the keys the demo's traffic history comes from (analytics/seed.py: three keys in all).
    assert first == {"organizations": 1, "users": 2, "memberships": 2, "api_keys": 3}
    assert ApiKey.objects.filter(name="demo", revoked_at__isnull=True).count() == 1
    organization = Organization.objects.get(slug="demo")
    assert organization.name == "Demo Security Team"
    roles = dict(Membership.objects.filter(organization=organization).values_list("user__email", "role"))
    assert roles == {"demo@evalence.local": Role.ADMIN, "analyst@evalence.local": Role.ANALYST}

    assert "http://127.0.0.1:8000" in output
    email, _, password = _printed(output, "Sign in").partition(" / ")
    password = password.split()[0]
    assert email == "demo@evalence.local"
    assert Client().login(username=email, password=password)
    assert Client().login(username="analyst@evalence.local", password=password)

    secret = _printed(output, "API key")
    key = services.api_key_authenticate(secret)
    assert key.organization == organization
    assert sorted(key.scopes) == sorted(Scope.values)


def test_seed_demo_invalidates_the_previous_key_secret() -> None:
    old_secret = _printed(run("seed_demo", "--accounts-only"), "API key")
    new_secret = _printed(run("seed_demo", "--accounts-only"), "API key")

    assert new_secret != old_secret
    services.api_key_authenticate(new_secret)
    with pytest.raises(services.InvalidApiKey):
        services.api_key_authenticate(old_secret)


def test_seed_demo_takes_the_password_from_the_option_then_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "the-environment-demo-pass")
    run("seed_demo", "--accounts-only")
    assert Client().login(username="demo@evalence.local", password="the-environment-demo-pass")
    assert not Prompt.objects.exists()  # --accounts-only: the people and the key, no sample data

    run("seed_demo", "--accounts-only", "--password", "the-option-demo-passphrase")
    assert Client().login(username="demo@evalence.local", password="the-option-demo-passphrase")
    assert not Client().login(username="demo@evalence.local", password="the-environment-demo-pass")


def test_seed_demo_refuses_the_public_default_password_in_production(settings: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DEBUG = False
    settings.TESTING = False
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        run("seed_demo")
    assert not Organization.objects.exists()


def test_seed_demo_keeps_the_chain_of_the_demo_organization_intact() -> None:
    run("seed_demo")
    run("seed_demo")

    assert services.audit_log_verify(organization=Organization.objects.get(slug="demo")).is_intact


# --- verify_audit_log ---------------------------------------------------------------------------------------------


@pytest.fixture
def chain(org_a: Organization, org_b: Organization) -> list[AuditLog]:
    """Five entries in organization A's chain (sequences 1-5) and one in B's; factories skip `org.created`."""
    AuditLogFactory(organization=org_b)
    return [AuditLogFactory(organization=org_a, data={"n": n}) for n in range(5)]


def test_verify_audit_log_reports_every_intact_chain(chain: list[AuditLog]) -> None:
    output = run("verify_audit_log")

    assert "acme: ok, 5 entries" in output
    assert "globex: ok, 1 entry" in output
    assert "global: ok, 0 entries" in output


def test_verify_audit_log_reports_the_first_modified_entry(chain: list[AuditLog]) -> None:
    AuditLog.objects.filter(pk=chain[1].pk).update(data={"x": 1})
    AuditLog.objects.filter(pk=chain[3].pk).update(data={"x": 2})

    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit_log", stdout=out)

    assert excinfo.value.returncode == 1
    assert f"acme: BROKEN at entry #{chain[1].sequence}: " in out.getvalue()
    assert "modified" in out.getvalue()
    assert "globex: ok" in out.getvalue()
    assert f"acme at entry #{chain[1].sequence}" in str(excinfo.value)


def test_verify_audit_log_reports_a_deleted_entry_as_a_gap(chain: list[AuditLog]) -> None:
    AuditLog.objects.filter(pk=chain[2].pk).delete()

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_audit_log", "--org", "acme", stdout=out)

    assert f"acme: BROKEN at entry #{chain[2].sequence}: " in out.getvalue()
    assert "missing" in out.getvalue()
    assert "globex" not in out.getvalue()


def test_verify_audit_log_checks_the_global_chain(db: Any) -> None:
    for _ in range(2):
        services.login_failed_for_unknown(email="nobody@example.com", ip="203.0.113.9")
    assert "global: ok, 2 entries" in run("verify_audit_log")

    AuditLog.objects.filter(organization=None).update(ip_address="198.51.100.1")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_audit_log", stdout=out)
    assert "global: BROKEN at entry #1" in out.getvalue()


def test_verify_audit_log_refuses_an_unknown_organization(db: Any) -> None:
    OrganizationFactory(slug="acme")
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        run("verify_audit_log", "--org", "nope")
