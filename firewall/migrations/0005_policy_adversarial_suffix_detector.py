"""Existing policies get the new adversarial-suffix detector switched on, as new policies have it.

A policy lists its detectors by name and a name it lacks is off, so without this every organization created before
the detector existed would silently go without it. A policy that already names it (switched off, say) keeps its choice.
"""

from django.db import migrations


def switch_on(apps, schema_editor):
    TenantPolicy = apps.get_model("firewall", "TenantPolicy")
    for policy in TenantPolicy.objects.only("pk", "detectors").iterator():
        detectors = dict(policy.detectors or {})
        if "adversarial_suffix" in detectors:
            continue
        detectors["adversarial_suffix"] = True
        TenantPolicy.objects.filter(pk=policy.pk).update(detectors=detectors)


def switch_off(apps, schema_editor):
    TenantPolicy = apps.get_model("firewall", "TenantPolicy")
    for policy in TenantPolicy.objects.only("pk", "detectors").iterator():
        detectors = dict(policy.detectors or {})
        if detectors.pop("adversarial_suffix", None) is not None:
            TenantPolicy.objects.filter(pk=policy.pk).update(detectors=detectors)


class Migration(migrations.Migration):
    dependencies = [("firewall", "0004_detector_version_organization")]

    operations = [migrations.RunPython(switch_on, switch_off)]
