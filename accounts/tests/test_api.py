"""Accounts API: what admins, viewers and keys can do with members, invitations, keys and the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.choices import AuditAction, Role
from accounts.models import ApiKey, AuditVerification, Membership
from evalence.jobs import JobStatus

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_key_and_sees_its_secret_only_in_that_response(alice: Any, api: Any) -> None:
    client = api(alice)
    response = client.post("/api/v1/accounts/api-keys/", {"name": "ci", "scopes": ["read"]}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    assert secret.startswith(response.json()["prefix"])
    listed = client.get("/api/v1/accounts/api-keys/").json()["results"]
    assert [k["name"] for k in listed] == ["ci"]
    assert "secret" not in listed[0] and secret not in str(listed)
    assert api(secret=secret).get("/api/v1/accounts/organization/").json()["slug"] == "acme"


def test_rotate_and_revoke_through_the_api(alice: Any, api: Any, key_a: Any) -> None:
    key, old_secret = key_a
    client = api(alice)
    rotated = client.post(f"/api/v1/accounts/api-keys/{key.pk}/rotate/")
    assert rotated.status_code == 201
    assert api(secret=old_secret).get("/api/v1/accounts/organization/").status_code == 401
    new_id, new_secret = rotated.json()["id"], rotated.json()["secret"]
    assert api(secret=new_secret).get("/api/v1/accounts/organization/").status_code == 200
    assert client.post(f"/api/v1/accounts/api-keys/{new_id}/revoke/").json()["status"] == "revoked"
    assert api(secret=new_secret).get("/api/v1/accounts/organization/").status_code == 401
    again = client.post(f"/api/v1/accounts/api-keys/{new_id}/revoke/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_a_viewer_reads_members_but_cannot_see_keys(bob: Any, api: Any) -> None:
    client = api(bob)
    emails = {m["email"] for m in client.get("/api/v1/accounts/members/").json()["results"]}
    assert emails == {"alice@acme.test", "bob@acme.test"}
    assert client.get("/api/v1/accounts/api-keys/").status_code == 403


def test_an_admin_changes_a_role_and_it_is_audited(alice: Any, bob: Any, api: Any) -> None:
    membership = Membership.objects.get(user=bob)
    response = api(alice).patch(f"/api/v1/accounts/members/{membership.pk}/", {"role": "analyst"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "analyst"
    log = api(alice).get("/api/v1/accounts/audit-log/", {"action": AuditAction.MEMBER_ROLE_CHANGED}).json()
    assert log["count"] == 1 and log["results"][0]["data"]["to"] == "analyst"


def test_the_last_admin_cannot_leave_through_the_api(alice: Any, api: Any) -> None:
    membership = Membership.objects.get(user=alice)
    response = api(alice).delete(f"/api/v1/accounts/members/{membership.pk}/")
    assert response.status_code == 409
    assert Membership.objects.filter(pk=membership.pk, role=Role.ADMIN).exists()


def test_a_key_with_read_scope_exports_the_audit_log(alice: Any, api: Any, key_a: Any) -> None:
    api(alice).post("/api/v1/accounts/invitations/", {"email": "new@acme.test", "role": "viewer"}, format="json")
    body = api(secret=key_a[1]).get("/api/v1/accounts/audit-log/").json()
    actions = [entry["action"] for entry in body["results"]]
    assert AuditAction.INVITATION_SENT in actions and AuditAction.API_KEY_CREATED in actions
    assert all(len(entry["entry_hash"]) == 64 for entry in body["results"])


def test_starting_an_audit_verification_answers_202_and_the_job_finishes(
    alice: Any, api: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api(alice).post("/api/v1/accounts/audit-verifications/")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    run_jobs()
    verification = AuditVerification.objects.get(pk=response.json()["id"])
    assert verification.status == JobStatus.SUCCEEDED and verification.is_intact is True
    detail = api(alice).get(f"/api/v1/accounts/audit-verifications/{verification.pk}/").json()
    assert detail["status"] == "succeeded"


def test_page_size_is_capped_at_1000(alice: Any, api: Any) -> None:
    for i in range(3):
        ApiKey.objects.create(
            organization=Membership.objects.get(user=alice).organization,
            name=f"k{i}",
            prefix=f"ev_test{i:04d}",
            secret_hash="x" * 64,
            scopes=["read"],
        )
    body = api(alice).get("/api/v1/accounts/api-keys/", {"page_size": 2}).json()
    assert len(body["results"]) == 2 and body["count"] == 3 and body["next"]
