"""OpenAPI description of API-key authentication (drf-spectacular finds extensions once they are imported)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ev_<prefix>_<secret>",
            "description": "An organization's API key: `Authorization: Bearer <key>` (or the `X-API-Key` header).",
        }
