"""Fixtures shared by the firewall's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firewall import detectors


@pytest.fixture
def fresh_detectors(settings: Any) -> Iterator[None]:
    """Every check of the active classifier reads the database (no refresh interval), and no process-local
    classifier or index outlives the test (the tests that train, activate and shadow versions use it)."""
    settings.FIREWALL_REFRESH_S = 0
    detectors.reset_caches()
    yield
    detectors.reset_caches()
