"""Secrets at rest (webhook secrets, model-endpoint and target API keys): Fernet-encrypted text columns.

The key comes from FIELD_ENCRYPTION_KEY (a Fernet key, or any passphrase, stretched with SHA-256) and falls back to
SECRET_KEY, so the embedded default works with no setting. Rotating the key: list the old one after the new one in
FIELD_ENCRYPTION_KEY (comma separated); values written under an old key are still read.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "fernet:"


def _fernet_key(material: str) -> bytes:
    material = material.strip()
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


@lru_cache(maxsize=4)
def _cipher(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys.split(",") if k.strip()])


def cipher() -> MultiFernet:
    return _cipher(getattr(settings, "FIELD_ENCRYPTION_KEY", "") or settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return PREFIX + cipher().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    """Plain text of a stored value; a value that was never encrypted comes back unchanged."""
    if not value.startswith(PREFIX):
        return value
    try:
        return cipher().decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ValueError("an encrypted value cannot be read with the configured FIELD_ENCRYPTION_KEY") from None


def mask(value: str) -> str:
    """What a page or an API may show of a secret: its last four characters at most."""
    if not value:
        return ""
    return "••••" + value[-4:] if len(value) > 8 else "••••"


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code sees the plain value."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return decrypt(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(str(value))
