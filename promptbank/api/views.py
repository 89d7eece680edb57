"""Prompt bank API: prompts and their variants, imports, the review queue, releases, export and learning events.

Who may do what (API keys by scope, signed-in users by role in the active organization):

- reads: keys with `read`, users from viewer up;
- writes: keys with `promptbank:write`; users from analyst up — analysts curate the organization's own prompts,
  run imports and review submissions (they are the bank's curators);
- creating and activating releases: keys with `promptbank:write`, users who are admins (a release changes what every
  test and the firewall's regression run use).

Global rows (the shared bank, its releases) are listed and readable by every tenant and writable by none: changing
one answers 403 `permission_denied`; another organization's rows answer 404. Views parse input, call one service and
shape the answer; the rules live in `promptbank.services`, `promptbank.imports` and `promptbank.exports`.
"""

from __future__ import annotations

import uuid
from typing import Any

import django_filters
from django.http import StreamingHttpResponse
from django.urls import reverse
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.choices import Role, Scope
from accounts.models import ApiKey, User
from evalence.api.parsers import StrictJSONParser
from evalence.api.views import TenantAPIView, TenantModelViewSet, TenantReadOnlyViewSet
from evalence.errors import Conflict, Forbidden, NotFound, ValidationFailed
from evalence.http import client_ip
from promptbank import exports, imports, learning, nearest, services
from promptbank.api import serializers as s
from promptbank.choices import IngestionSource, LearningEventType
from promptbank.filters import PromptFilter, SubmissionFilter
from promptbank.models import BankRelease, IngestionRun, LearningEvent, Prompt, Submission


def _actor(request: Request) -> User | None:
    """The signed-in user behind a request; None for an API key (its writes are attributed to no person)."""
    return request.user if isinstance(request.user, User) else None


def _api_key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _refuse_global(row: Any, what: str) -> None:
    if row.organization_id is None:
        raise Forbidden(f"This {what} belongs to the global bank, which is read-only to organizations.")


# --- prompts ------------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List the prompts the organization sees (its own and the global bank's)"),
    retrieve=extend_schema(summary="A prompt with its versions, the organization's statistics and related prompts"),
)
class PromptViewSet(TenantModelViewSet):
    """The bank the organization sees: its own prompts and the global bank's (read-only).

    Create answers 201 with the stored prompt and `status` `accepted` or `near_duplicate`; a text already in the
    bank answers 409 `conflict` naming the existing prompt (`fields.existing_id`). DELETE deactivates (a new
    version, so releases keep what they had) and answers 200 with the prompt; PATCH `{"is_active": true}` revives it.
    """

    queryset = Prompt.objects.select_related("author")
    include_global_rows = True
    filterset_class = PromptFilter
    ordering_fields = ["created_at", "updated_at", "quality_score", "category", "label", "version"]
    write_scope = Scope.PROMPTBANK_WRITE
    write_role = Role.ANALYST
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self) -> type:
        return s.PromptDetailSerializer if self.action == "retrieve" else s.PromptSerializer

    def _created(self, results: list[services.PromptCreated]) -> list[dict[str, Any]]:
        """Each prompt with what the pipeline made of it (two mutators can land on one prompt: keep both answers)."""
        context = self.get_serializer_context()
        return [{**s.PromptSerializer(r.prompt, context=context).data, "status": r.status} for r in results]

    @extend_schema(
        request=s.PromptCreateSerializer,
        responses={
            201: s.PromptCreatedSerializer,
            400: OpenApiResponse(description="Rejected by the pipeline"),
            409: OpenApiResponse(description="Duplicate: `fields.existing_id` names the prompt"),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.PromptCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.prompt_create(
            organization=request.organization, author=_actor(request), **data.validated_data
        )
        if result.status == "duplicate":
            existing = result.prompt
            raise Conflict(
                f"This text is already in the bank as prompt {existing.pk}.",
                fields={"existing_id": [str(existing.pk)]},
            )
        return Response(self._created([result])[0], status=status.HTTP_201_CREATED)

    @extend_schema(request=s.PromptUpdateSerializer, responses=s.PromptDetailSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        prompt = self.get_object()  # look up first: another organization's id is a 404, whatever the body
        _refuse_global(prompt, "prompt")
        data = s.PromptUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = services.prompt_update(prompt=prompt, actor=_actor(request), **data.validated_data)
        return Response(s.PromptDetailSerializer(prompt, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses=s.PromptSerializer)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        prompt = self.get_object()
        _refuse_global(prompt, "prompt")
        prompt = services.prompt_set_active(prompt=prompt, active=False, actor=_actor(request))
        return Response(s.PromptSerializer(prompt, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Make attack variants of a prompt (global prompts too: the variants land in the organization's bank)",
        request=s.VariantsCreateSerializer,
        responses={201: s.VariantsCreatedSerializer},
    )
    @action(detail=True, methods=["post"])
    def variants(self, request: Request, pk: str | None = None) -> Response:
        prompt = self.get_object()
        data = s.VariantsCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        results = services.variants_create(
            prompt=prompt,
            mutators=data.validated_data["mutators"],
            organization=request.organization,
            actor=_actor(request),
        )
        return Response({"variants": self._created(results)}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Every version of a prompt, newest first", responses=s.PromptVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        prompt = self.get_object()
        versions = prompt.versions.select_related("changed_by").order_by("-version")
        return Response(s.PromptVersionSerializer(versions, many=True).data)


# --- imports ------------------------------------------------------------------------------------------------------


class ImportViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """File imports into the organization's bank, run in the background through the pipeline.

    POST a `file` as multipart/form-data (JSON array, JSONL or CSV with a header; `format` is guessed from the name
    when absent) or JSON `{"records": [...]}`; both take an optional `source` and `license`. The answer is 202 with
    the run's id and URL; the run shows its counts, `lines_done` while it works, and each rejected line's reason.
    """

    queryset = IngestionRun.objects.select_related("created_by")
    serializer_class = s.IngestionRunSerializer
    parser_classes = [StrictJSONParser, MultiPartParser]
    filterset_fields = ["status", "channel", "format"]
    ordering_fields = ["created_at", "finished_at"]
    write_scope = Scope.PROMPTBANK_WRITE
    write_role = Role.ANALYST

    @extend_schema(
        request={"multipart/form-data": s.ImportCreateSerializer, "application/json": s.ImportCreateSerializer},
        responses={202: s.ImportStartedSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.ImportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        upload = values.get("file")
        run = imports.import_start(
            organization=request.organization,
            channel=IngestionSource.API,
            source_name=values.get("source") or "api",
            fileobj=upload,
            filename=upload.name if upload is not None else "",
            records=values.get("records"),
            format=values.get("format", ""),
            license=values.get("license", ""),
            actor=_actor(request),
        )
        run.refresh_from_db()  # without Redis the job may already have run
        url = request.build_absolute_uri(reverse("api:promptbank:import-detail", kwargs={"pk": run.pk}))
        return Response({"id": run.pk, "status": run.status, "url": url}, status=status.HTTP_202_ACCEPTED)


# --- submissions --------------------------------------------------------------------------------------------------


class SubmissionViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """The review queue. Any writer submits (analysts, keys with `promptbank:write`); curators — analysts and
    admins — accept (the text enters the bank through the pipeline) or reject with a reason. Reviewing a submission
    that is no longer pending answers 409."""

    queryset = Submission.objects.select_related("submitter", "submitter_key", "reviewer")
    serializer_class = s.SubmissionSerializer
    filterset_class = SubmissionFilter
    ordering_fields = ["created_at", "occurrences", "reviewed_at"]
    write_scope = Scope.PROMPTBANK_WRITE
    write_role = Role.ANALYST

    @extend_schema(request=s.SubmissionCreateSerializer, responses={201: s.SubmissionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.SubmissionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = _api_key(request)
        values = {"source": "api" if key else "user", **data.validated_data}
        submission = services.submission_create(
            organization=request.organization, submitter=_actor(request), submitter_key=key, **values
        )
        return Response(s.SubmissionSerializer(submission).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.SubmissionAcceptSerializer, responses=s.SubmissionSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        submission = self.get_object()
        data = s.SubmissionAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        submission = services.submission_accept(
            submission=submission, reviewer=_actor(request), reason=data.validated_data.get("reason", "")
        )
        return Response(s.SubmissionSerializer(submission).data)

    @extend_schema(request=s.SubmissionRejectSerializer, responses=s.SubmissionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        submission = self.get_object()
        data = s.SubmissionRejectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        submission = services.submission_reject(
            submission=submission, reviewer=_actor(request), reason=data.validated_data["reason"]
        )
        return Response(s.SubmissionSerializer(submission).data)


# --- releases -----------------------------------------------------------------------------------------------------


class ReleaseViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Frozen, numbered snapshots of the bank: the organization's own and the global bank's (read-only).

    Create with `{"bump": "major|minor|patch", "notes": "...", "activate": true}`; activating an older release is
    a rollback. Both need an admin (or a key with `promptbank:write`): the active release decides what red-team
    suites and the firewall's regression run use. `compare/?from=<id>&to=<id>` lists prompts added, removed and
    changed between two releases the organization sees.
    """

    queryset = BankRelease.objects.select_related("created_by")
    serializer_class = s.ReleaseSerializer
    include_global_rows = True
    filterset_fields = ["is_active"]
    ordering_fields = ["created_at", "activated_at"]
    write_scope = Scope.PROMPTBANK_WRITE
    write_role = Role.ADMIN

    @extend_schema(request=s.ReleaseCreateSerializer, responses={201: s.ReleaseSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.ReleaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = services.release_create(
            organization=request.organization, actor=_actor(request), **data.validated_data
        )
        return Response(s.ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Make this release the active one (an older one: a rollback)",
        request=None,
        responses=s.ReleaseSerializer,
    )
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        release = self.get_object()
        _refuse_global(release, "release")
        release = services.release_activate(release=release, actor=_actor(request))
        return Response(s.ReleaseSerializer(release).data)

    @extend_schema(
        summary="Prompts added, removed and changed from one release to another",
        parameters=[s.ReleaseCompareQuerySerializer],
        responses=s.ReleaseCompareSerializer,
    )
    @action(detail=False, methods=["get"])
    def compare(self, request: Request) -> Response:
        query = s.ReleaseCompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        visible = self.get_queryset()
        older = visible.filter(pk=query.validated_data["from"]).first()
        newer = visible.filter(pk=query.validated_data["to"]).first()
        if older is None or newer is None:
            raise NotFound("No such release.")
        diff = services.release_compare(older, newer)
        body = {
            "from": older,
            "to": newer,
            "added": diff.added,
            "removed": diff.removed,
            "changed": diff.changed,
            "counts": {"added": len(diff.added), "removed": len(diff.removed), "changed": len(diff.changed)},
        }
        return Response(s.ReleaseCompareSerializer(body).data)


# --- export -------------------------------------------------------------------------------------------------------


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=` names the export's file format here, not one of DRF's renderers; errors are always JSON."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


EXPORT_CONTENT_TYPES = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


class ExportView(TenantAPIView):
    """Download the bank the organization sees as JSONL or CSV, streamed: the prompts matching the same filters as
    the prompt list, or exactly the prompt versions of one release (`?release=<id>`; filters are then ignored)."""

    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        summary="Export prompts (a filtered set or a release) as JSONL or CSV",
        parameters=[
            OpenApiParameter("format", str, enum=list(exports.FORMATS), default="jsonl"),
            OpenApiParameter("release", OpenApiTypes.UUID, description="Export this release's prompt versions."),
            *[
                OpenApiParameter(name, str, required=False, description=f"As in the prompt list: {name}.")
                for name in PromptFilter.base_filters
            ],
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        organization = request.organization
        fmt = exports.check_format(request.query_params.get("format", "jsonl"))
        prompts, release = None, None
        release_id = request.query_params.get("release")
        if release_id:
            visible = BankRelease.objects.for_org(organization, include_global=True)
            release = visible.filter(pk=_uuid_or_404(release_id, "release")).select_related("organization").first()
            if release is None:
                raise NotFound("No such release.")
        else:
            filterset = PromptFilter(
                request.query_params, queryset=Prompt.objects.for_org(organization, include_global=True)
            )
            if not filterset.is_valid():
                raise translate_validation(filterset.errors)
            prompts = filterset.qs
        lines = exports.export_lines(prompts=prompts, release=release, fmt=fmt)
        response = StreamingHttpResponse(lines, content_type=EXPORT_CONTENT_TYPES[fmt])
        scope = release.organization if release is not None else organization
        response["Content-Disposition"] = f'attachment; filename="{exports.export_filename(scope, release, fmt)}"'
        response["Cache-Control"] = "no-store"
        return response


def _uuid_or_404(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"No such {what}.") from None


# --- learning events ----------------------------------------------------------------------------------------------


class LearningEventFilter(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(field_name="event_type", choices=LearningEventType.choices)

    class Meta:
        model = LearningEvent
        fields = ["type"]


class LearningEventViewSet(TenantReadOnlyViewSet):
    """The organization's learning loop, newest first: what entered the bank, what was reviewed, released and
    retrained (written by the bank and, later, by the firewall and testing apps). Read-only."""

    queryset = LearningEvent.objects.all()
    serializer_class = s.LearningEventSerializer
    filterset_class = LearningEventFilter
    ordering_fields = ["created_at"]


# --- nearest known attacks ----------------------------------------------------------------------------------------


class NearestView(TenantAPIView):
    """The bank prompts (global and own) and threat patterns nearest to a text, best first. A read: keys with
    `read`, users from viewer up, though it is a POST (the text does not belong in a URL or a log line)."""

    write_scope = Scope.READ
    write_role = Role.VIEWER
    parser_classes = [StrictJSONParser]
    http_method_names = ["post", "options"]

    @extend_schema(
        summary="Nearest known attacks to a text (bank prompts and threat patterns)",
        request=s.NearestQuerySerializer,
        responses={
            200: s.NearestResultSerializer,
            400: OpenApiResponse(description="Invalid body: `error.fields` names each bad field"),
        },
    )
    def post(self, request: Request) -> Response:
        query = s.NearestQuerySerializer(data=request.data)
        query.is_valid(raise_exception=True)
        matches = nearest.nearest_attacks(organization=request.organization, **query.validated_data)
        return Response({"results": [match.as_dict() for match in matches]})


# --- learning policy ----------------------------------------------------------------------------------------------


class LearningPolicyView(TenantAPIView):
    """The organization's learning policy. Read: keys with `read`, viewers up. PATCH some of its switches: signed-in
    admins only (audited; a wrong type or range answers 400 with `error.fields`)."""

    read_role = Role.VIEWER
    write_scope = None
    write_role = Role.ADMIN
    http_method_names = ["get", "patch", "options"]

    @extend_schema(summary="The organization's learning policy", responses=s.LearningPolicySerializer)
    def get(self, request: Request) -> Response:
        return Response(s.LearningPolicySerializer(learning.learning_policy_for(request.organization)).data)

    @extend_schema(
        summary="Change the learning policy (admins only; audited)",
        request=s.LearningPolicyUpdateSerializer,
        responses={200: s.LearningPolicySerializer, 400: OpenApiResponse(description="`error.fields` names each")},
    )
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationFailed("Send a JSON object of the fields to change.")
        policy = learning.learning_policy_update(
            organization=request.organization, changes=dict(request.data), actor=_actor(request), ip=client_ip(request)
        )
        return Response(s.LearningPolicySerializer(policy).data)
