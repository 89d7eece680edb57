"""`seed_demo`'s prompt-bank step: the shipped seed in the global bank, and a first global release, once."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from promptbank.models import BankRelease, Prompt


@pytest.mark.django_db
def test_seed_demo_loads_the_bank_and_releases_it_once() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    active = Prompt.objects.filter(organization__isnull=True, is_active=True).count()
    assert active > 6000
    release = BankRelease.objects.get(organization__isnull=True)
    assert (release.version, release.is_active, release.prompt_count) == ("1.0.0", True, active)
    assert release.attack_count > 2000 and release.benign_count > 4000

    call_command("seed_demo", stdout=io.StringIO())
    assert BankRelease.objects.filter(organization__isnull=True).count() == 1
    assert Prompt.objects.filter(organization__isnull=True).count() == active
