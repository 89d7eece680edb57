import pytest
from django.test import Client
from django.urls import reverse
from accounts import services
from accounts.models import AuditVerification, AuditLog
pytestmark = pytest.mark.django_db

def test_dbg(org_a, alice, django_capture_on_commit_callbacks):
    r = services.audit_log_verify(organization=org_a)
    print("before", r)
    c = Client(); c.force_login(alice)
    r = services.audit_log_verify(organization=org_a)
    print("after login", r)
    for e in AuditLog.objects.filter(organization=org_a):
        print(e.sequence, e.action, e.created_at, e.ip_address, e.data)
    assert 0
