"""The go-live API: per deployment, the checklist with its evidence, running the checks,
the stage and the gate (409 naming the failing checks), overrides by team admins, artifact
digests from the deploy pipeline and load tests; and the load-test runs themselves
(cancel, and applying a stress test's capacity to the scaling policy). Changes go through
:mod:`.services`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Role
from apps.accounts.selectors import user_has_role
from apps.api.viewsets import TeamScopedReadOnlyViewSet
from apps.autoscaling.serializers import AutoscalingPolicySerializer
from apps.inventory.models import Deployment

from .models import ArtifactReport, LoadTestRun
from .selectors import check_history, checklist, checklists
from .serializers import (
    ApplyCapacityRequestSerializer,
    ArtifactReportSerializer,
    ChecklistSerializer,
    CheckResultSerializer,
    GateRefusalSerializer,
    LoadTestRequestSerializer,
    LoadTestRunSerializer,
    OverrideRequestSerializer,
    OverrideSerializer,
    StageSerializer,
    loadtest_params,
)
from .services import (
    Conflict,
    GateRefused,
    artifacts_report,
    capacity_apply,
    checks_run,
    gate_override,
    loadtest_cancel,
    loadtest_create,
    stage_set,
)
from .tasks import run_loadtest

CONFLICT = OpenApiResponse(description="Refused by the deployment's state; `detail` says why.")


def _require(request: Request, team_id: int, role: str) -> None:
    if not user_has_role(user=request.user, team_id=team_id, role=role):
        raise PermissionDenied(f"This needs the {role} role in the team.")


def _service_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


def _conflict(message: str, **extra: Any) -> Response:
    return Response({"detail": message, **extra}, status=status.HTTP_409_CONFLICT)


class GoLiveDeploymentViewSet(TeamScopedReadOnlyViewSet):
    """The go-live checklist of each of the team's deployments (the URL id is the
    deployment id)."""

    queryset = Deployment.objects.select_related("team", "model", "cluster").order_by("pk")
    serializer_class = ChecklistSerializer
    ordering_fields = ["name"]
    filterset_fields = ["status"]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every deployment's stage and gate (checks included)."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = checklists(deployments=list(page if page is not None else []))
        return self.get_paginated_response(ChecklistSerializer(rows, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The checklist: stage, gate, latest result of each check with its evidence."""
        return Response(ChecklistSerializer(checklist(deployment=self.get_object())).data)

    @extend_schema(request=None, responses=ChecklistSerializer)
    @action(detail=True, methods=["post"], url_path="run-checks")
    def run_checks(self, request: Request, pk: str | None = None) -> Response:
        """Run every check now (operator role) and answer with the checklist."""
        deployment = self.get_object()
        _require(request, deployment.team_id, Role.OPERATOR)
        checks_run(deployment=deployment)
        return Response(ChecklistSerializer(checklist(deployment=deployment)).data)

    @extend_schema(responses=CheckResultSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Results over time, newest first (`?key=` for one check)."""
        deployment = self.get_object()
        rows = check_history(deployment=deployment, key=request.query_params.get("key"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CheckResultSerializer(page, many=True).data)

    @extend_schema(
        request=StageSerializer,
        responses={200: ChecklistSerializer, 409: GateRefusalSerializer},
    )
    @action(detail=True, methods=["post"])
    def stage(self, request: Request, pk: str | None = None) -> Response:
        """Move the deployment to a stage (operator role). Production makes it active and
        needs every required check to pass: 409 names those that do not."""
        deployment = self.get_object()
        _require(request, deployment.team_id, Role.OPERATOR)
        body = StageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            stage_set(
                deployment=deployment,
                stage=body.validated_data["stage"],
                require_tls=body.validated_data.get("require_tls"),
                actor=request.user,
            )
        except GateRefused as exc:
            return _conflict(exc.message, failing_checks=exc.failures)
        except DjangoValidationError as exc:
            raise _service_errors(exc) from exc
        return Response(ChecklistSerializer(checklist(deployment=deployment)).data)

    @extend_schema(request=OverrideRequestSerializer, responses={201: OverrideSerializer})
    @action(detail=True, methods=["post"])
    def override(self, request: Request, pk: str | None = None) -> Response:
        """Let the deployment through the gate although required checks fail (team admins,
        with a reason; stored with the failing checks and audited)."""
        deployment = self.get_object()
        _require(request, deployment.team_id, Role.ADMIN)
        body = OverrideRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            override = gate_override(
                deployment=deployment, actor=request.user, **body.validated_data
            )
        except DjangoValidationError as exc:
            raise _service_errors(exc) from exc
        return Response(OverrideSerializer(override).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ArtifactReportSerializer(many=True))
    @action(detail=True, methods=["get"])
    def artifacts(self, request: Request, pk: str | None = None) -> Response:
        """Artifact digests the deploy pipeline reported, newest first."""
        rows = ArtifactReport.objects.filter(deployment=self.get_object())
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ArtifactReportSerializer(page, many=True).data)

    @extend_schema(request=ArtifactReportSerializer, responses={201: ArtifactReportSerializer})
    @artifacts.mapping.post
    def report_artifacts(self, request: Request, pk: str | None = None) -> Response:
        """Report the files put on the serving nodes with their sha256 and/or an overall
        sha256: digest (operator role); the artifacts check compares them with the model's
        checksum."""
        deployment = self.get_object()
        _require(request, deployment.team_id, Role.OPERATOR)
        body = ArtifactReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            report = artifacts_report(
                deployment=deployment,
                files=[dict(f) for f in body.validated_data.get("files", [])],
                digest=body.validated_data.get("digest", ""),
                actor=request.user,
            )
        except DjangoValidationError as exc:
            raise _service_errors(exc) from exc
        return Response(ArtifactReportSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=LoadTestRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def loadtests(self, request: Request, pk: str | None = None) -> Response:
        """The deployment's load tests, newest first."""
        rows = LoadTestRun.objects.filter(deployment=self.get_object()).select_related("created_by")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(LoadTestRunSerializer(page, many=True).data)

    @extend_schema(
        request=LoadTestRequestSerializer,
        responses={202: LoadTestRunSerializer, 409: CONFLICT},
    )
    @loadtests.mapping.post
    def start_loadtest(self, request: Request, pk: str | None = None) -> Response:
        """Queue a load test of the deployment's endpoint (operator role), bounded by the
        team caps. 409 against an active production deployment without
        `confirm_production: true`, or while another test of it is queued or running."""
        deployment = self.get_object()
        _require(request, deployment.team_id, Role.OPERATOR)
        body = LoadTestRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            run = loadtest_create(
                deployment=deployment,
                params=loadtest_params(dict(body.validated_data)),
                confirm_production=body.validated_data["confirm_production"],
                actor=request.user,
                enqueue=run_loadtest.delay,
            )
        except Conflict as exc:
            return _conflict(str(exc))
        except DjangoValidationError as exc:
            raise _service_errors(exc) from exc
        return Response(LoadTestRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class LoadTestRunViewSet(TeamScopedReadOnlyViewSet):
    """Load-test runs of the team's deployments."""

    queryset = LoadTestRun.objects.select_related("created_by")
    serializer_class = LoadTestRunSerializer
    team_field = "deployment__team"
    filterset_fields = ["deployment", "mode", "status"]
    ordering_fields = ["created_at"]

    @extend_schema(request=None, responses={200: LoadTestRunSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a queued run at once, or stop a running one at the engine's next check."""
        run = self.get_object()
        _require(request, run.deployment.team_id, Role.OPERATOR)
        try:
            loadtest_cancel(run=run, actor=request.user)
        except Conflict as exc:
            return _conflict(str(exc))
        return Response(LoadTestRunSerializer(run).data)

    @extend_schema(
        request=ApplyCapacityRequestSerializer,
        responses={200: AutoscalingPolicySerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="apply-capacity")
    def apply_capacity(self, request: Request, pk: str | None = None) -> Response:
        """Give the deployment's scaling policy this stress test's measured capacity per
        replica as its starting capacity (capacity_initial_per_replica) and the replicas it
        ran on (capacity_pool_size); with ``pooling_with``, another stress test at a
        different replica count, also the pooling fitted to the two (capacity_pooling).
        Operator role."""
        run = self.get_object()
        _require(request, run.deployment.team_id, Role.OPERATOR)
        body = ApplyCapacityRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        other = None
        if "pooling_with" in body.validated_data:
            other = self.get_queryset().filter(pk=body.validated_data["pooling_with"]).first()
            if other is None:
                raise ValidationError({"pooling_with": ["No such load test."]})
        try:
            policy = capacity_apply(run=run, actor=request.user, pooling_with=other)
        except Conflict as exc:
            return _conflict(str(exc))
        except DjangoValidationError as exc:
            raise _service_errors(exc) from exc
        return Response(AutoscalingPolicySerializer(policy).data)
