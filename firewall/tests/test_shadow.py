"""Shadow mode: a candidate classifier scored beside the active one on live traffic (stored, never enforced), picked
up by every process like the active one, compared per organization on /firewall/shadow/, promoted (gated, or forced
with a reason) or stopped by a platform operator, audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditLog
from evalence.errors import Conflict
from firewall import detectors, services, shadow
from firewall.choices import DetectorStatus, EvaluationSource
from firewall.detectors import _sha256
from firewall.engine.classifier import Classifier, train
from firewall.engine.normalize import normalize
from firewall.models import DetectorVersion, Evaluation
from firewall.services import EvaluationRequest
from firewall.tests.test_detectors import CATEGORY, add_prompts, seed_slice
from promptbank.choices import LearningEventType
from promptbank.models import LearningEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_detectors")]

ROWS = seed_slice(40, 60)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    """Two classifiers trained once for the module (no database): a sound one, and one trained on inverted labels,
    which disagrees with it on nearly everything; plus an attack and a benign text each scores confidently."""
    texts = [r["text"] for r in ROWS]
    labels = [r["label"] for r in ROWS]
    categories = [CATEGORY[r["category"]] for r in ROWS]
    good, good_metrics = train(texts, labels, categories)
    bad, bad_metrics = train(texts, [1 - label for label in labels], categories)

    def score(model: Classifier, text: str) -> float:
        return model.score([normalize(text).text])[0]

    attack = next(
        r["text"] for r in ROWS if r["label"] and score(good, r["text"]) >= 0.8 and score(bad, r["text"]) < 0.3
    )
    benign = next(
        r["text"] for r in ROWS if not r["label"] and score(good, r["text"]) < 0.3 and score(bad, r["text"]) >= 0.8
    )
    return {
        "good": (good.to_bytes(), good_metrics),
        "bad": (bad.to_bytes(), bad_metrics),
        "attack": attack,
        "benign": benign,
    }


def store_version(number: int, status: str, model: tuple[bytes, dict]) -> DetectorVersion:
    artifact, metrics = model
    return DetectorVersion.objects.create(
        version=number, status=status, artifact=artifact, artifact_sha256=_sha256(artifact), metrics=metrics
    )


@pytest.fixture
def setup(models: dict[str, Any], org_a: Any, alice: Any) -> dict[str, Any]:
    """The bank in the database (the promotion gate reads it), v1 active (sound), v2 in shadow (inverted), and
    organization A's policy deciding on the classifier alone so every decision is the classifier's."""
    add_prompts(ROWS)
    active = store_version(1, DetectorStatus.ACTIVE, models["good"])
    candidate = store_version(2, DetectorStatus.CANDIDATE, models["bad"])
    only_classifier = {"signatures": False, "similarity": False, "context": False}
    services.policy_update(organization=org_a, changes={"detectors": only_classifier}, actor=alice)
    return {"active": active, "candidate": candidate}


def evaluate(org: Any, text: str, source: str = EvaluationSource.API, store: bool = True) -> Any:
    return services.evaluate(organization=org, request=EvaluationRequest(text=text), source=source, store=store)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def operator(user: Any) -> Any:
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


# --- the hot path -------------------------------------------------------------------------------------------------


def test_a_live_evaluation_stores_the_shadow_decision_and_never_changes_its_own(
    setup: dict[str, Any], models: dict[str, Any], org_a: Any
) -> None:
    before = evaluate(org_a, models["attack"]).evaluation
    shadow.shadow_start(version=setup["candidate"])

    attack = evaluate(org_a, models["attack"]).evaluation
    benign = evaluate(org_a, models["benign"]).evaluation

    assert before.shadow_version == "" and before.shadow_score is None
    # The active decision, its confidence and every detector's report are what they were without a shadow.
    assert (attack.decision, attack.policy_decision, attack.confidence) == (
        before.decision,
        before.policy_decision,
        before.confidence,
    )
    assert attack.detectors == before.detectors and attack.decision == "blocked"
    assert attack.shadow_version == "v2" and attack.shadow_decision == "allowed"
    assert attack.shadow_score < 0.3 and attack.shadow_latency_ms > 0
    assert isinstance(attack.context["shadow"]["active_classifier_ms"], float)
    # The other way round: the shadow would block what the active version lets through; it is not enforced.
    assert benign.decision == "allowed" and benign.shadow_decision == "blocked" and benign.shadow_score >= 0.8
    stored = Evaluation.objects.get(pk=benign.pk)
    assert (stored.shadow_version, stored.shadow_decision) == ("v2", "blocked")


def test_the_batch_api_is_scored_in_shadow_too(setup: dict[str, Any], models: dict[str, Any], org_a: Any) -> None:
    shadow.shadow_start(version=setup["candidate"])

    outcomes = services.evaluate_batch(
        organization=org_a, requests=[EvaluationRequest(text=models["attack"]), EvaluationRequest(text="hello")]
    )

    assert [o.evaluation.shadow_version for o in outcomes] == ["v2", "v2"]
    assert outcomes[0].evaluation.decision == "blocked" and outcomes[0].evaluation.shadow_decision == "allowed"


def test_test_traffic_unstored_calls_and_a_policy_without_the_classifier_are_not_scored(
    setup: dict[str, Any], models: dict[str, Any], org_a: Any, alice: Any
) -> None:
    shadow.shadow_start(version=setup["candidate"])

    from_a_test = evaluate(org_a, models["benign"], source=EvaluationSource.TEST).evaluation
    unstored = evaluate(org_a, models["benign"], store=False)
    services.policy_update(organization=org_a, changes={"detectors": {"classifier": False}}, actor=alice)
    without_classifier = evaluate(org_a, models["benign"]).evaluation

    assert from_a_test.shadow_version == "" and from_a_test.shadow_decision == ""
    assert unstored.shadow is None and unstored.evaluation is None
    assert without_classifier.shadow_version == ""


def test_no_shadow_version_costs_nothing_and_stores_nothing(
    setup: dict[str, Any], models: dict[str, Any], org_a: Any
) -> None:
    outcome = evaluate(org_a, models["benign"])

    assert outcome.shadow is None and outcome.evaluation.shadow_version == ""
    assert "shadow" not in outcome.evaluation.context
    assert outcome.timings_ms == {}  # no detector timing asked for when nothing is in shadow


def test_every_process_picks_up_a_shadow_version_after_the_refresh_interval(
    setup: dict[str, Any], settings: Any
) -> None:
    settings.FIREWALL_REFRESH_S = 3600
    assert detectors.shadow_classifier() is None  # checked now: nothing in shadow, trusted for an hour

    # Another process puts v2 in shadow: this one does not query again before its interval is over.
    DetectorVersion.objects.filter(pk=setup["candidate"].pk).update(status=DetectorStatus.SHADOW)
    assert detectors.shadow_classifier() is None
    settings.FIREWALL_REFRESH_S = 0  # the interval is over
    loaded = detectors.shadow_classifier()
    assert loaded is not None and loaded.version == "v2"
    assert detectors.active_classifier().version == "v1"  # the active one is its own copy

    DetectorVersion.objects.filter(pk=setup["candidate"].pk).update(status=DetectorStatus.CANDIDATE)
    assert detectors.shadow_classifier() is None


# --- operations -----------------------------------------------------------------------------------------------------


def test_starting_a_shadow_replaces_the_one_running_and_refuses_the_active_version(
    setup: dict[str, Any], models: dict[str, Any], alice: Any
) -> None:
    shadow.shadow_start(version=setup["candidate"], actor=alice)
    third = store_version(3, DetectorStatus.CANDIDATE, models["good"])

    shadow.shadow_start(version=third, actor=alice)

    statuses = dict(DetectorVersion.objects.values_list("version", "status"))
    assert statuses == {1: "active", 2: "candidate", 3: "shadow"}
    with pytest.raises(Conflict, match="only a candidate or a retired version"):
        shadow.shadow_start(version=setup["active"])
    actions = list(AuditLog.objects.filter(organization=None).order_by("sequence").values_list("action", flat=True))
    assert actions == [
        shadow.AUDIT_SHADOW_STARTED,
        shadow.AUDIT_SHADOW_STOPPED,
        shadow.AUDIT_SHADOW_STARTED,
    ]


def test_the_admin_starts_and_stops_the_shadow(setup: dict[str, Any]) -> None:
    from accounts.tests.factories import UserFactory

    root = UserFactory(email="root@evalence.test", is_staff=True, is_superuser=True)
    client = signed_in(root)
    url = reverse("admin:firewall_detectorversion_changelist")

    started = client.post(url, {"action": "start_shadow", "_selected_action": [setup["candidate"].pk]}, follow=True)
    assert DetectorVersion.objects.get(pk=setup["candidate"].pk).status == DetectorStatus.SHADOW
    assert "Classifier v2 is in shadow" in started.content.decode()

    stopped = client.post(url, {"action": "stop_shadow", "_selected_action": [setup["candidate"].pk]}, follow=True)
    assert DetectorVersion.objects.get(pk=setup["candidate"].pk).status == DetectorStatus.CANDIDATE
    assert "left shadow" in stopped.content.decode()


# --- the comparison page --------------------------------------------------------------------------------------------


def _traffic(org: Any, models: dict[str, Any]) -> None:
    for text in (models["attack"], models["attack"], models["benign"], "What time is it in Lisbon?"):
        evaluate(org, text)


def test_the_page_figures_match_the_rows(setup: dict[str, Any], models: dict[str, Any], org_a: Any, carol: Any) -> None:
    shadow.shadow_start(version=setup["candidate"])
    _traffic(org_a, models)
    evaluate(org_a, models["benign"], source=EvaluationSource.TEST)  # not live traffic: not counted

    response = signed_in(carol).get(reverse("firewall:shadow"))

    assert response.status_code == 200
    comparison = response.context["comparison"]
    rows = list(Evaluation.objects.for_org(org_a).exclude(shadow_version=""))
    agree = [e for e in rows if e.shadow_decision == e.policy_decision]
    active_blocked = [e for e in rows if e.policy_decision == "blocked" and e.shadow_decision != "blocked"]
    shadow_blocked = [e for e in rows if e.shadow_decision == "blocked" and e.policy_decision != "blocked"]
    assert comparison.version == "v2" and comparison.total == len(rows) == 4
    assert comparison.agreements == len(agree)
    assert comparison.active_blocked_shadow_allowed == len(active_blocked) == 2
    assert comparison.shadow_blocked_active_allowed == len(shadow_blocked) >= 1
    assert comparison.agreement_rate == len(agree) / 4
    assert {e["pk"] for e in comparison.examples["active_blocked"]} == {e.pk for e in active_blocked}
    assert comparison.latency["shadow_classifier"]["p95"] == shadow.percentile([e.shadow_latency_ms for e in rows], 95)
    assert comparison.latency["evaluation"]["p50"] == shadow.percentile([e.latency_ms for e in rows], 50)
    active_ms = [e.context["shadow"]["active_classifier_ms"] for e in rows]
    assert comparison.latency["active_classifier"]["p95"] == shadow.percentile(active_ms, 95) is not None
    html = response.content.decode()
    for e in active_blocked + shadow_blocked:
        assert reverse("firewall:evaluation_detail", args=[e.pk]) in html
    assert 'data-testid="promote-form"' not in html  # an analyst reads, does not promote


def test_another_organization_sees_none_of_the_examples(
    setup: dict[str, Any], models: dict[str, Any], org_a: Any, charlie: Any, org_b: Any
) -> None:
    shadow.shadow_start(version=setup["candidate"])
    _traffic(org_a, models)
    own = evaluate(org_b, "What time is it in Porto?").evaluation

    response = signed_in(charlie).get(reverse("firewall:shadow"))

    comparison = response.context["comparison"]
    assert comparison.total == 1 and own.shadow_version == "v2"
    html = response.content.decode()
    for evaluation in Evaluation.objects.for_org(org_a):
        assert str(evaluation.pk) not in html
    assert models["attack"][:40] not in html and models["benign"][:40] not in html


def test_viewers_cannot_open_the_page_and_only_operators_can_act(
    setup: dict[str, Any], bob: Any, carol: Any, alice: Any
) -> None:
    shadow.shadow_start(version=setup["candidate"])
    url = reverse("firewall:shadow")

    assert signed_in(bob).get(url).status_code == 403
    assert signed_in(carol).post(url, {"action": "stop"}).status_code == 403
    # An admin of one organization may not change the classifier every organization shares.
    assert signed_in(alice).post(url, {"action": "stop"}).status_code == 403
    assert 'data-testid="promote-form"' not in signed_in(alice).get(url).content.decode()
    assert DetectorVersion.objects.get(pk=setup["candidate"].pk).status == DetectorStatus.SHADOW


def test_a_worse_shadow_is_refused_unless_forced_with_a_reason(setup: dict[str, Any], alice: Any) -> None:
    shadow.shadow_start(version=setup["candidate"])
    client = signed_in(operator(alice))
    url = reverse("firewall:shadow")

    refused = client.post(url, {"action": "promote"})
    assert refused.status_code == 409
    assert "v2 not promoted" in refused.content.decode()
    assert DetectorVersion.objects.get(pk=setup["candidate"].pk).status == DetectorStatus.SHADOW

    no_reason = client.post(url, {"action": "promote", "force": "on"})
    assert no_reason.status_code == 400 and "A reason is required." in no_reason.content.decode()

    forced = client.post(url, {"action": "promote", "force": "on", "reason": "Ops drill"}, follow=True)
    assert forced.redirect_chain[-1][0] == url
    statuses = dict(DetectorVersion.objects.values_list("version", "status"))
    assert statuses == {1: "retired", 2: "active"}
    entry = AuditLog.objects.filter(organization=None, action=shadow.AUDIT_DETECTOR_PROMOTED).get()
    assert entry.actor == alice and entry.data["forced"] is True and entry.data["reason"] == "Ops drill"
    assert entry.data["organization"] == "acme" and "not promoted" not in entry.data["gate"]
    assert "worse than the active v1" in entry.data["gate"]
    activated = LearningEvent.objects.filter(event_type=LearningEventType.DETECTOR_ACTIVATED)
    assert list(activated.values_list("source_id", flat=True)) == [str(setup["candidate"].pk)]
    assert detectors.active_classifier().version == "v2"


def test_a_shadow_no_worse_than_the_active_one_is_promoted_and_stop_returns_one_to_candidate(
    setup: dict[str, Any], models: dict[str, Any], alice: Any
) -> None:
    twin = store_version(3, DetectorStatus.CANDIDATE, models["good"])  # the same model: the same figures
    shadow.shadow_start(version=twin)
    client = signed_in(operator(alice))
    url = reverse("firewall:shadow")

    promoted = client.post(url, {"action": "promote"}, follow=True)

    assert "Classifier v3 is now active." in promoted.content.decode()
    reason = DetectorVersion.objects.get(pk=twin.pk).reason
    assert reason.startswith("Promoted from shadow by alice@acme.test: no worse")
    assert AuditLog.objects.get(organization=None, action=shadow.AUDIT_DETECTOR_PROMOTED).data["forced"] is False

    shadow.shadow_start(version=setup["candidate"])
    stopped = client.post(url, {"action": "stop"}, follow=True)
    assert "v2 left shadow" in stopped.content.decode()
    assert DetectorVersion.objects.get(pk=setup["candidate"].pk).status == DetectorStatus.CANDIDATE
    assert client.post(url, {"action": "stop"}, follow=True).status_code == 200
    assert not DetectorVersion.objects.filter(status=DetectorStatus.SHADOW).exists()
