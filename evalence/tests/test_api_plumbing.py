"""The API's shared behaviour: one error body for every failure, request ids, auth, scopes, limits, docs and probes."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.choices import Scope
from accounts.tests.factories import ApiKeyFactory
from evalence.logging import JsonFormatter, RequestIdFilter

ORG_URL = "/api/v1/accounts/organization/"
KEYS_URL = "/api/v1/accounts/api-keys/"


def assert_error_body(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    assert error["timestamp"].endswith("Z")
    return error


@pytest.mark.django_db
class TestErrorBody:
    def test_malformed_json_is_a_400_parse_error(self, alice: Any, api: Any) -> None:
        response = api(alice).post(KEYS_URL, data='{"name": "x", ', content_type="application/json")
        error = assert_error_body(response, 400, "parse_error")
        assert "Malformed JSON" in error["message"]

    def test_a_wrong_content_type_is_a_415(self, alice: Any, api: Any) -> None:
        response = api(alice).post(KEYS_URL, data="name=x", content_type="text/plain")
        assert_error_body(response, 415, "unsupported_media_type")

    def test_an_unknown_url_under_the_api_is_a_json_404(self, alice: Any, api: Any) -> None:
        response = api(alice).get("/api/v1/no-such-thing/")
        error = assert_error_body(response, 404, "not_found")
        assert "/api/v1/no-such-thing/" in error["message"]

    def test_a_missing_key_is_a_401_with_a_bearer_challenge(self, db: Any) -> None:
        response = Client().get(ORG_URL)
        assert_error_body(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_a_wrong_key_is_a_401(self, org_a: Any, api: Any) -> None:
        response = api(secret="ev_00000000_not-a-real-secret").get(ORG_URL)
        error = assert_error_body(response, 401, "authentication_failed")
        assert error["message"] == "Invalid API key."

    def test_a_revoked_key_is_a_401(self, key_a: Any, api: Any) -> None:
        key, secret = key_a
        services.api_key_revoke(api_key=key, actor=None)
        error = assert_error_body(api(secret=secret).get(ORG_URL), 401, "authentication_failed")
        assert "revoked" in error["message"]

    def test_an_expired_key_is_a_401(self, org_a: Any, api: Any) -> None:
        key = ApiKeyFactory(organization=org_a, expires_at=timezone.now() + timedelta(seconds=30))
        type(key).objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        error = assert_error_body(api(secret=key._secret).get(ORG_URL), 401, "authentication_failed")
        assert "expired" in error["message"]

    def test_a_key_without_the_read_scope_is_a_403(self, org_a: Any, api: Any) -> None:
        key = ApiKeyFactory(organization=org_a, scopes=[Scope.FIREWALL_EVALUATE])
        error = assert_error_body(api(secret=key._secret).get(ORG_URL), 403, "permission_denied")
        assert "'read' scope" in error["message"]

    def test_a_key_can_never_manage_keys(self, key_a: Any, api: Any) -> None:
        response = api(secret=key_a[1]).post(KEYS_URL, data={"name": "x", "scopes": ["read"]}, format="json")
        assert_error_body(response, 403, "permission_denied")

    def test_a_viewer_cannot_write(self, bob: Any, api: Any) -> None:
        response = api(bob).post("/api/v1/accounts/invitations/", data={"email": "x@y.test"}, format="json")
        assert_error_body(response, 403, "permission_denied")

    def test_an_unsupported_method_is_a_405(self, alice: Any, api: Any) -> None:
        assert_error_body(api(alice).put(KEYS_URL, data={}, format="json"), 405, "method_not_allowed")

    def test_a_body_over_the_limit_is_a_413(self, alice: Any, api: Any, settings: Any) -> None:
        settings.API_MAX_BODY_BYTES = 1000
        body = json.dumps({"name": "x" * 2000, "scopes": ["read"]})
        assert_error_body(
            api(alice).post(KEYS_URL, data=body, content_type="application/json"), 413, "payload_too_large"
        )

    def test_too_many_requests_is_a_429_with_retry_after(self, key_a: Any, api: Any, settings: Any) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"principal": "3/minute"}}
        from rest_framework.settings import api_settings

        api_settings.reload()
        try:
            from evalence.api.throttling import PrincipalRateThrottle

            PrincipalRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
            client = api(secret=key_a[1])
            statuses = [client.get(ORG_URL).status_code for _ in range(4)]
            assert statuses[:3] == [200, 200, 200]
            response = client.get(ORG_URL)
            assert_error_body(response, 429, "throttled")
            assert int(response["Retry-After"]) > 0
        finally:
            PrincipalRateThrottle.THROTTLE_RATES = {"principal": "100000/minute"}
            settings.REST_FRAMEWORK = {
                **settings.REST_FRAMEWORK,
                "DEFAULT_THROTTLE_RATES": {"principal": "100000/minute"},
            }
            api_settings.reload()

    def test_validation_errors_name_their_fields(self, alice: Any, api: Any) -> None:
        response = api(alice).post(KEYS_URL, data={"name": "", "scopes": ["root"]}, format="json")
        error = assert_error_body(response, 400, "validation_error")
        assert set(error["fields"]) == {"name", "scopes"}

    def test_json_nested_too_deeply_is_refused(self, alice: Any, api: Any) -> None:
        body = "[" * 100 + "]" * 100
        error = assert_error_body(
            api(alice).post(KEYS_URL, data=body, content_type="application/json"), 400, "parse_error"
        )
        assert "nested" in error["message"]

    def test_invalid_utf8_is_refused(self, alice: Any, api: Any) -> None:
        response = api(alice).post(KEYS_URL, data=b'{"name": "\xff\xfe"}', content_type="application/json")
        error = assert_error_body(response, 400, "parse_error")
        assert "UTF-8" in error["message"]

    @pytest.mark.urls("evalence.tests.crash_urls")
    def test_an_unexpected_failure_is_a_500_in_the_same_body(self, db: Any) -> None:
        client = Client(raise_request_exception=False)
        error = assert_error_body(client.get("/api/v1/_crash/"), 500, "server_error")
        assert "boom" not in error["message"]  # internals stay in the logs

    @pytest.mark.urls("evalence.tests.crash_urls")
    def test_a_page_failure_renders_the_html_500_with_the_request_id(self, db: Any) -> None:
        response = Client(raise_request_exception=False).get("/_crash/")
        assert response.status_code == 500
        assert response["X-Request-ID"] in response.content.decode()


@pytest.mark.django_db
class TestRequestIds:
    def test_a_valid_incoming_request_id_is_kept(self, alice: Any, api: Any) -> None:
        response = api(alice).get(ORG_URL, HTTP_X_REQUEST_ID="trace-abc.123")
        assert response["X-Request-ID"] == "trace-abc.123"

    def test_a_hostile_incoming_request_id_is_replaced(self, alice: Any, api: Any) -> None:
        response = api(alice).get(ORG_URL, HTTP_X_REQUEST_ID="x" * 500)
        assert response["X-Request-ID"] != "x" * 500
        assert len(response["X-Request-ID"]) == 32

    def test_log_lines_are_json_and_carry_the_request_id(self, alice: Any, api: Any) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("django.request")
        logger.addHandler(handler)
        try:
            response = api(alice).get("/api/v1/accounts/api-keys/not-a-uuid/", HTTP_X_REQUEST_ID="req-42")
        finally:
            logger.removeHandler(handler)
        assert response.status_code == 404
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert lines, "django.request logged nothing for a 404"
        assert all(line["request_id"] == "req-42" for line in lines)
        assert lines[0]["level"] == "WARNING"


@pytest.mark.django_db
class TestDocsAndProbes:
    def test_the_schema_is_openapi_3_and_lists_the_endpoints(self) -> None:
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        schema = json.loads(response.content)
        assert schema["openapi"].startswith("3.")
        assert "/api/v1/accounts/api-keys/" in schema["paths"]
        assert "ApiKeyAuth" in json.dumps(schema["components"].get("securitySchemes", {}))

    def test_swagger_ui_is_served_from_this_server_only(self) -> None:
        html = Client().get("/api/docs/").content.decode()
        assert "swagger-ui" in html
        external = [src for src in ("http://", "https://", "//cdn") if f'src="{src}' in html or f'href="{src}' in html]
        assert not external, f"/api/docs/ loads assets from elsewhere: {external}"
        assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")

    def test_liveness_answers_ok(self) -> None:
        response = Client().get("/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    def test_readiness_checks_the_database_and_queues(self, settings: Any) -> None:
        body = Client().get("/health/ready").json()
        assert body["status"] == "ok"
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["queues"]["status"] == "ok"
        assert ("redis" in body["checks"]) == bool(settings.REDIS_URL)

    def test_readiness_is_503_when_redis_is_unreachable(self, settings: Any) -> None:
        settings.REDIS_URL = "redis://127.0.0.1:1/0"
        response = Client().get("/health/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["redis"]["status"] == "error"

    def test_metrics_count_requests_and_time_them(self, alice: Any, api: Any) -> None:
        api(alice).get(ORG_URL)
        text = Client().get("/metrics").content.decode()
        assert "django_http_requests_total_by_method_total" in text
        assert "django_http_requests_latency_seconds_by_view_method_bucket" in text

    def test_metrics_can_require_a_token(self, settings: Any) -> None:
        settings.METRICS_TOKEN = "s3cret-token"
        assert_error_body(Client().get("/metrics"), 401, "not_authenticated")
        ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
        assert ok.status_code == 200
