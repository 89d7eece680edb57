"""Environment reading: one django-environ object, `*_FILE` secrets, loud failures for required values."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# A local `.env` is a convenience for developers; real deployments set the environment.
_dotenv = BASE_DIR / ".env"
if _dotenv.is_file() and os.environ.get("EVALENCE_READ_DOTENV", "1") != "0":
    env.read_env(str(_dotenv))


def secret(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the file named by NAME_FILE (container secrets), or the default."""
    file_var = f"{name}_FILE"
    if os.environ.get(file_var):
        path = Path(os.environ[file_var])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_var} points to {path}, which cannot be read ({exc.strerror})") from None
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def required(name: str, value: str | None, why: str) -> str:
    """Stop start-up with one clear message when a required value is missing."""
    if not value:
        raise ImproperlyConfigured(f"{name} is required {why}; set it in the environment (see .env.example)")
    return value
