"""Firewall API: evaluate one text or a batch, list and triage evaluations, read and change the policy, and list the
threat patterns the organization has seen.

Who may do what (API keys by scope, signed-in users by role in the active organization):

- evaluate (one or a batch) and feedback: keys with `firewall:evaluate`; users from analyst up;
- evaluations, policy (read) and threat patterns: keys with `read`; users from viewer up;
- changing the policy and the emergency stop: admins only, never a key — a policy change is a person's decision,
  audited with who made it.

Bad input is refused before anything is evaluated or stored, in the standard error body: `text` must be a
non-empty JSON string that is not only whitespace; NUL characters (and lone surrogates) are refused with 400 rather
than stripped, because no real prompt holds them, PostgreSQL cannot store them, and stripping them would judge a
text the caller did not send. A text over the policy's limit answers 413 `input_too_large`. The evaluate endpoints
skip the general API throttle for keys: the policy's per-key rate limit replaces it, and its answer is a stored
`throttled` decision (429 with `Retry-After` for one text; a throttled result inside a 200 for a batch).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from accounts.choices import Role, Scope
from accounts.models import ApiKey, User
from evalence.api.views import TenantAPIView, TenantReadOnlyViewSet
from evalence.errors import ValidationFailed, error_body
from evalence.http import client_ip
from evalence.logging import get_request_id
from firewall import selectors, services
from firewall.api import serializers as s
from firewall.filters import EvaluationFilter
from firewall.models import Evaluation
from firewall.services import EvaluationOutcome


def _actor(request: Request) -> User | None:
    """The signed-in user behind a request; None for an API key."""
    return request.user if isinstance(request.user, User) else None


def _api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _result(outcome: EvaluationOutcome) -> dict[str, Any]:
    body = outcome.as_dict()
    if outcome.throttled:
        body["retry_after"] = outcome.retry_after_s
    return body


class _EvaluateBase(TenantAPIView):
    write_scope = Scope.FIREWALL_EVALUATE
    write_role = Role.ANALYST
    http_method_names = ["post", "options"]

    def get_throttles(self) -> list[BaseThrottle]:
        # Keys are limited by their organization's policy (a `throttled` decision, stored); signed-in users keep
        # the general API throttle.
        if isinstance(self.request.auth, ApiKey):
            return []
        return super().get_throttles()

    def _call(self, request: Request) -> dict[str, Any]:
        return {
            "organization": request.organization,
            "api_key": _api_key(request),
            "actor": _actor(request),
            "ip": client_ip(request),
            "request_id": get_request_id(),
        }


class EvaluateView(_EvaluateBase):
    """Evaluate one input or output under the organization's policy; every call is stored."""

    @extend_schema(
        summary="Evaluate one text (or the last of an OpenAI-style messages list)",
        request=s.EvaluateSerializer,
        responses={
            200: s.EvaluateResultSerializer,
            400: OpenApiResponse(description="Invalid body: `error.fields` names each bad field"),
            413: OpenApiResponse(description="`input_too_large`: the text is over the policy's maximum"),
            429: OpenApiResponse(
                s.EvaluateResultSerializer,
                description="Rate limited: the `error` object and the stored `throttled` evaluation, with Retry-After",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        evaluation_request = s.parse_evaluate(request.data)
        outcome = services.evaluate(request=evaluation_request, **self._call(request))
        body = _result(outcome)
        if not outcome.throttled:
            return Response(body)
        message = f"This API key is over its rate limit; retry in {outcome.retry_after_s} s."
        return Response(
            {**error_body("throttled", message), **body},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(outcome.retry_after_s)},
        )


class EvaluateBatchView(_EvaluateBase):
    """Evaluate up to FIREWALL_BATCH_MAX texts in order. A bad item fails the whole batch before anything is stored;
    an item over the rate limit is a `throttled` result (with `retry_after`) and the batch still answers 200."""

    @extend_schema(
        summary="Evaluate a batch of texts, one result each, in order",
        request=s.BatchSerializer,
        responses={
            200: s.BatchResultSerializer,
            400: OpenApiResponse(description="Invalid batch: `error.fields` names items like `items[3].text`"),
            413: OpenApiResponse(description="`input_too_large`: an item is over the policy's maximum"),
        },
    )
    def post(self, request: Request) -> Response:
        requests = s.parse_batch(request.data)
        outcomes = services.evaluate_batch(requests=requests, **self._call(request))
        return Response({"results": [_result(outcome) for outcome in outcomes]})


@extend_schema_view(
    list=extend_schema(summary="List the organization's evaluations, newest first"),
    retrieve=extend_schema(summary="An evaluation with its text, each detector's evidence, context and feedback"),
)
class EvaluationViewSet(TenantReadOnlyViewSet):
    """Every call to the firewall, filterable (see `firewall.filters.EvaluationFilter`). Feedback sends the text to
    the prompt bank's review queue as a `source="firewall"` submission (the learning loop)."""

    queryset = Evaluation.objects.select_related("api_key", "feedback_by")
    filterset_class = EvaluationFilter
    ordering_fields = ["created_at", "confidence", "latency_ms"]
    action_scopes = {"feedback": Scope.FIREWALL_EVALUATE}
    action_roles = {"feedback": Role.ANALYST}

    def get_serializer_class(self) -> type:
        return s.EvaluationSerializer if self.action == "list" else s.EvaluationDetailSerializer

    @extend_schema(
        summary="Say whether the decision was right: false_positive, false_negative or correct (with a note)",
        request=s.FeedbackSerializer,
        responses=s.EvaluationDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk: str | None = None) -> Response:
        evaluation = self.get_object()  # look up first: another organization's id is a 404, whatever the body
        data = s.FeedbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = services.feedback_record(
            evaluation=evaluation,
            kind=data.validated_data["feedback"],
            note=data.validated_data["note"],
            actor=_actor(request),
            api_key=_api_key(request),
        )
        return Response(s.EvaluationDetailSerializer(evaluation).data)


class PolicyView(TenantAPIView):
    """The organization's firewall policy. Read: keys with `read`, viewers up. PATCH any of the policy's fields:
    admins only (validated as a whole, versioned and audited; bad values answer 400 with `error.fields`)."""

    read_role = Role.VIEWER
    write_scope = None
    write_role = Role.ADMIN
    http_method_names = ["get", "patch", "options"]

    @extend_schema(summary="The organization's firewall policy", responses=s.PolicySerializer)
    def get(self, request: Request) -> Response:
        return Response(s.PolicySerializer(selectors.policy_for(request.organization)).data)

    @extend_schema(
        summary="Change the policy (admins only; audited)",
        request=s.PolicyUpdateSerializer,
        responses={200: s.PolicySerializer, 400: OpenApiResponse(description="`error.fields` names each bad field")},
    )
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationFailed("Send a JSON object of the fields to change.")
        # The service validates types and ranges of the whole policy; a serializer here would coerce "5" into 5.
        policy = services.policy_update(
            organization=request.organization, changes=dict(request.data), actor=_actor(request), ip=client_ip(request)
        )
        return Response(s.PolicySerializer(policy).data)


class EmergencyStopView(TenantAPIView):
    """Block every evaluation of the organization at once (`active: true` needs a reason), or lift the stop."""

    write_scope = None
    write_role = Role.ADMIN
    http_method_names = ["post", "options"]

    @extend_schema(
        summary="Switch the emergency stop (admins only; audited)",
        request=s.EmergencyStopSerializer,
        responses=s.PolicySerializer,
    )
    def post(self, request: Request) -> Response:
        data = s.EmergencyStopSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.emergency_stop_set(
            organization=request.organization, actor=_actor(request), ip=client_ip(request), **data.validated_data
        )
        return Response(s.PolicySerializer(policy).data)


@extend_schema(summary="Threat patterns the organization has been sent (hashes and counts, never text)")
class ThreatPatternListView(TenantAPIView, generics.ListAPIView):
    """Blocked attacks known by the hash of their normalized text, with the counts across every organization and
    this organization's own; filter its evaluations with `?text_hash=` to see its texts."""

    serializer_class = s.ThreatPatternSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return selectors.threat_patterns_for(self.request.organization)
