"""Keep every process's loaded firewall state in step with the database: rules, judges and policies."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from firewall import runtime
from firewall.models import DetectorModel, Signature, TenantPolicy


@receiver([post_save, post_delete], sender=Signature)
def _signature_changed(**kwargs: Any) -> None:
    runtime.signatures_changed()
    transaction.on_commit(runtime.signatures_changed)


@receiver([post_save, post_delete], sender=DetectorModel)
def _detector_model_changed(**kwargs: Any) -> None:
    runtime.judges_changed()
    transaction.on_commit(runtime.judges_changed)


@receiver([post_save, post_delete], sender=TenantPolicy)
def _policy_changed(instance: TenantPolicy, **kwargs: Any) -> None:
    organization_id = instance.organization_id
    runtime.forget_policy(organization_id)
    transaction.on_commit(lambda: runtime.forget_policy(organization_id))


def sync_builtin_signatures(sender: Any, **kwargs: Any) -> None:
    """After `migrate` (and after a test database flush): the shipped rules exist as global rows."""
    from firewall.services import builtin_signatures_sync

    builtin_signatures_sync()


def connect(app_config: Any) -> None:
    post_migrate.connect(sync_builtin_signatures, sender=app_config, dispatch_uid="firewall_builtin_signatures")
