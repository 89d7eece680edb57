"""Production settings, checked the way an operator meets them: `manage.py` in a fresh process with a clean environment.

These run `manage.py` as a subprocess because settings are read once per process; they touch no database.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python manage.py ...` with only the given variables (plus PATH), as a production host would start it."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "EVALENCE_READ_DOTENV": "0",  # a developer's .env must not leak in
        "DJANGO_SETTINGS_MODULE": "evalence.settings",
        "STATIC_ROOT": str(tmp_path / "static"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        **env,
    }
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def strong_key() -> str:
    return secrets.token_urlsafe(64)


PRODUCTION = {"DEBUG": "false", "ALLOWED_HOSTS": "evalence.example.com"}


def test_deploy_checks_pass_with_production_settings(tmp_path: Path) -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={**PRODUCTION, "SECRET_KEY": strong_key()},
        tmp_path=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_missing_secret_key_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = manage("check", env=PRODUCTION, tmp_path=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_allowed_hosts_stop_start_up_with_one_line(tmp_path: Path) -> None:
    result = manage("check", env={"DEBUG": "false", "SECRET_KEY": strong_key()}, tmp_path=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ALLOWED_HOSTS" in lines[0]


def test_the_secret_key_is_read_from_secret_key_file(tmp_path: Path) -> None:
    key = strong_key()
    key_file = tmp_path / "secret_key"
    key_file.write_text(key + "\n", encoding="utf-8")

    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        env={**PRODUCTION, "SECRET_KEY_FILE": str(key_file)},
        tmp_path=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == key


def test_an_unreadable_secret_key_file_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = manage("check", env={**PRODUCTION, "SECRET_KEY_FILE": str(tmp_path / "does-not-exist")}, tmp_path=tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY_FILE" in lines[0]


@pytest.mark.parametrize("debug", ["true", "false"])
def test_an_empty_environment_with_debug_on_needs_no_secrets(tmp_path: Path, debug: str) -> None:
    """The embedded default (`make run`) starts with DEBUG=true and nothing else; DEBUG=false never does."""
    result = manage("check", env={"DEBUG": debug}, tmp_path=tmp_path)

    assert (result.returncode == 0) is (debug == "true"), result.stderr
