"""Testing API: targets, suites, sessions (start → 202, status and summary, cancel, resume, results, export, compare)
and results (read, analyst override, offer to the bank).

Who may do what (API keys by scope, signed-in users by role in the active organization):

- reads: keys with `read`, users from viewer up;
- targets (they hold credentials): admins, or keys with `testing:run`;
- suites, sessions, cancel, resume: analysts up, or keys with `testing:run`;
- overriding a verdict: analysts up, never a key — an override is a person's judgement, audited with their name.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.choices import Role, Scope
from accounts.models import User
from evalence.api.views import TenantGenericViewSet, TenantModelViewSet
from evalence.errors import ValidationFailed
from testing import reports, selectors, services, stats
from testing.api import serializers as s
from testing.filters import ResultFilter, SessionFilter
from testing.models import Target, TestResult, TestSession, TestSuite


def _actor(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed("Send a JSON object.")
    return request.data


@extend_schema_view(
    list=extend_schema(summary="The organization's targets (secrets never shown)"),
    retrieve=extend_schema(summary="A target"),
    create=extend_schema(summary="Add a target", request=s.TargetWriteSerializer, responses={201: s.TargetSerializer}),
    partial_update=extend_schema(
        summary="Change a target (a blank api_key keeps the stored one)",
        request=s.TargetWriteSerializer,
        responses=s.TargetSerializer,
    ),
    destroy=extend_schema(summary="Delete a target (its sessions keep their results)"),
)
class TargetViewSet(TenantModelViewSet):
    queryset = Target.objects.all()
    serializer_class = s.TargetSerializer
    write_scope = Scope.TESTING_RUN
    write_role = Role.ADMIN
    http_method_names = ["get", "post", "patch", "delete", "options"]
    filterset_fields = ["kind", "is_active"]
    ordering_fields = ["name", "created_at"]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.TargetWriteSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        target = services.target_create(organization=request.organization, actor=_actor(request), **data.validated_data)
        return Response(s.TargetSerializer(target).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        target = self.get_object()
        data = s.TargetWriteSerializer(data=_body(request), partial=True)
        data.is_valid(raise_exception=True)
        target = services.target_update(target=target, actor=_actor(request), **data.validated_data)
        return Response(s.TargetSerializer(target).data)

    def perform_destroy(self, instance: Target) -> None:
        services.target_delete(target=instance, actor=_actor(self.request))

    @extend_schema(
        summary="Test the connection: send one short benign prompt", request=None, responses=s.TargetSerializer
    )
    @action(detail=True, methods=["post"], url_path="test")
    def test_connection(self, request: Request, pk: str | None = None) -> Response:
        target = self.get_object()
        services.target_check(target=target)
        target.refresh_from_db()
        return Response(s.TargetSerializer(target).data)


@extend_schema_view(
    list=extend_schema(summary="The organization's suites"),
    create=extend_schema(summary="Save a selection of bank prompts with mutators and generations"),
    partial_update=extend_schema(summary="Change a suite"),
    destroy=extend_schema(summary="Delete a suite (its sessions keep their results)"),
)
class SuiteViewSet(TenantModelViewSet):
    queryset = TestSuite.objects.select_related("release", "llm_judge")
    serializer_class = s.SuiteSerializer
    write_scope = Scope.TESTING_RUN
    write_role = Role.ANALYST
    http_method_names = ["get", "post", "patch", "delete", "options"]
    ordering_fields = ["name", "created_at"]

    def _fields(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = dict(data)
        for name in ("release", "llm_judge"):
            if f"{name}_id" in fields:
                fields[f"{name}_id"] = fields.pop(f"{name}_id")
        return fields

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.SuiteSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        suite = services.suite_create(
            organization=request.organization, actor=_actor(request), **self._fields(data.validated_data)
        )
        return Response(s.SuiteSerializer(suite).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        suite = self.get_object()
        data = s.SuiteSerializer(data=_body(request), partial=True)
        data.is_valid(raise_exception=True)
        suite = services.suite_update(suite=suite, actor=_actor(request), **self._fields(data.validated_data))
        return Response(s.SuiteSerializer(suite).data)


@extend_schema_view(
    list=extend_schema(summary="The organization's test sessions, newest first"),
    retrieve=extend_schema(summary="A session: status, progress and summary"),
)
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    queryset = TestSession.objects.select_related("target", "suite")
    serializer_class = s.SessionSerializer
    filterset_class = SessionFilter
    ordering_fields = ["created_at", "status"]
    write_scope = Scope.TESTING_RUN
    write_role = Role.ANALYST

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # `?format=` names the export format here, not a DRF renderer.
        return super().perform_content_negotiation(request, force=force or self.action == "export")

    def get_object(self) -> TestSession:
        return services.session_recover_if_stale(super().get_object())  # a dead worker's session is re-queued

    @extend_schema(
        summary="Start a session of a suite against a target (202: queued on the testing queue)",
        request=s.SessionCreateSerializer,
        responses={202: s.SessionSerializer, 400: OpenApiResponse(description="`error.fields` names each bad field")},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.SessionCreateSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        org = request.organization
        target = selectors.targets_for(org).filter(pk=data.validated_data["target"]).first()
        suite = selectors.suites_for(org).filter(pk=data.validated_data["suite"]).first()
        errors = {}
        if target is None:
            errors["target"] = "No such target in this organization."
        if suite is None:
            errors["suite"] = "No such suite in this organization."
        if errors:
            raise ValidationError(errors)
        session = services.session_create(
            organization=org,
            actor=_actor(request),
            target=target,
            suite=suite,
            name=data.validated_data.get("name", ""),
        )
        return Response(s.SessionSerializer(session).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Cancel: the requests in flight finish, nothing new is sent", request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        session = services.session_cancel(session=self.get_object(), actor=_actor(request))
        return Response(s.SessionSerializer(session).data)

    @extend_schema(summary="Resume a failed, cancelled or stalled session: only its pending items run", request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        session = services.session_resume(session=self.get_object(), actor=_actor(request))
        return Response(s.SessionSerializer(session).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The session's results (filters: verdict, category, severity, kind, mutator, overridden, q)",
        responses=s.ResultSerializer(many=True),
        parameters=[
            OpenApiParameter("page_size", int, description="Up to 1000"),
            *[OpenApiParameter(name, str, many=name != "q") for name in ("verdict", "category", "severity", "q")],
            OpenApiParameter("kind", str, enum=["attack", "baseline"]),
            OpenApiParameter("mutator", str),
            OpenApiParameter("overridden", bool),
        ],
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def results(self, request: Request, pk: str | None = None) -> Response:
        session = self.get_object()
        filters = ResultFilter(request.query_params, queryset=selectors.results_for(session), request=request)
        if not filters.is_valid():
            raise ValidationError({name: " ".join(errors) for name, errors in filters.errors.items()})
        page = self.paginate_queryset(filters.qs.order_by("sequence"))
        return self.get_paginated_response(s.ResultSerializer(page, many=True).data)

    @extend_schema(
        summary="Export the session as html, csv, json, junit or sarif (`?format=`)",
        parameters=[OpenApiParameter("format", str, enum=list(reports.EXPORT_FORMATS), required=True)],
        responses={(200, "*/*"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        session = self.get_object()
        fmt = (request.query_params.get("format") or "").strip().lower()
        if fmt not in reports.EXPORT_FORMATS:
            raise ValidationError({"format": f"Use one of: {', '.join(reports.EXPORT_FORMATS)}."})
        body, content_type, filename = reports.export_session(session, fmt)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(
        summary="Compare two sessions: new findings, fixed, still failing, rate change",
        parameters=[
            OpenApiParameter("base", OpenApiTypes.UUID, required=True),
            OpenApiParameter("head", OpenApiTypes.UUID, required=True),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=False, methods=["get"])
    def compare(self, request: Request) -> Response:
        ids = {}
        for name in ("base", "head"):
            value = request.query_params.get(name, "")
            try:
                import uuid

                ids[name] = uuid.UUID(value)
            except ValueError:
                raise ValidationError({name: "Give a session id."}) from None
        sessions = {str(x.pk): x for x in selectors.sessions_for(request.organization).filter(pk__in=ids.values())}
        base, head = sessions.get(str(ids["base"])), sessions.get(str(ids["head"]))
        if base is None or head is None:
            raise NotFound("No such session in this organization.")
        return Response(stats.compare_sessions(base, head).as_dict())


@extend_schema_view(retrieve=extend_schema(summary="One result with every judge's verdict and evidence"))
class ResultViewSet(mixins.RetrieveModelMixin, TenantGenericViewSet):
    queryset = TestResult.objects.select_related("session", "overridden_by")
    serializer_class = s.ResultSerializer
    action_scopes = {"override": None, "submit": Scope.TESTING_RUN}
    action_roles = {"override": Role.ANALYST, "submit": Role.ANALYST}

    @extend_schema(
        summary="Override the verdict (analysts; audited; the judges' verdict is kept)", request=s.OverrideSerializer
    )
    @action(detail=True, methods=["post"])
    def override(self, request: Request, pk: str | None = None) -> Response:
        result = self.get_object()
        data = s.OverrideSerializer(data=_body(request))
        data.is_valid(raise_exception=True)
        result = services.result_override(result=result, actor=_actor(request), **data.validated_data)
        return Response(s.ResultSerializer(result).data)

    @extend_schema(
        summary="Offer a successful attack to the prompt bank (a submission with source=testing)", request=None
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        result = self.get_object()
        services.finding_submit(result=result, actor=_actor(request))
        result.refresh_from_db()
        return Response(s.ResultSerializer(result).data)
