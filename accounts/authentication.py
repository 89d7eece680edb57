"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts import services
from accounts.models import ApiKey


class ApiKeyUser:
    """The principal behind an API key: authenticated, never staff, tied to the key's organization."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.email = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.email

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        raw = request.headers.get("X-API-Key", "")
        if not raw:
            header = request.headers.get("Authorization", "")
            if not header:
                return None
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            raw = value
        if not raw.strip():
            raise AuthenticationFailed("Empty API key.")
        try:
            key = services.api_key_authenticate(raw)
        except services.InvalidApiKey as exc:
            raise AuthenticationFailed(str(exc)) from None
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
