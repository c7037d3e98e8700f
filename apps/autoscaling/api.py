"""The autoscaling API: policies, the decisions and scale actions taken under them, the
per-deployment kill switch and pin, the global pause and policy backtests. Changes go through
:mod:`.services`; decisions come from the engine."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import team_scoped, user_has_role
from apps.api.ids import parse_id
from apps.api.viewsets import TeamScopedReadOnlyViewSet, TeamScopedViewSet
from apps.inventory.models import Deployment

from .backtest import BacktestError, backtest_payload, backtest_policy, backtest_run
from .models import AutoscalingPolicy, DecisionRecord, DeploymentControl, ScaleAction
from .serializers import (
    AutoscalingPolicySerializer,
    BacktestRequestSerializer,
    BacktestResultSerializer,
    ControlSerializer,
    DecisionRecordSerializer,
    PauseSerializer,
    PinSerializer,
    ScaleActionSerializer,
)
from .services import (
    deployment_pause_set,
    deployment_pin,
    deployment_unpin,
    global_pause_active,
    global_pause_set,
)


class AutoscalingPolicyViewSet(TeamScopedViewSet):
    """Scaling policy per deployment (the URL id is the deployment id)."""

    queryset = AutoscalingPolicy.objects.select_related("deployment")
    serializer_class = AutoscalingPolicySerializer
    team_field = "deployment__team"
    filterset_fields = ["mode"]
    ordering_fields = ["updated_at"]

    def team_id_from_data(self, data: dict[str, object]) -> int | None:
        deployment = data.get("deployment")
        return deployment.team_id if isinstance(deployment, Deployment) else None


class DecisionRecordViewSet(TeamScopedReadOnlyViewSet):
    """Every scale evaluation with its inputs, per-target proposals, winning rule and reason."""

    queryset = DecisionRecord.objects.select_related("deployment")
    serializer_class = DecisionRecordSerializer
    team_field = "deployment__team"
    filterset_fields = ["deployment", "rule", "dry_run"]
    ordering_fields = ["at"]


class ScaleActionViewSet(TeamScopedReadOnlyViewSet):
    """Replica changes and their state (pending → running → succeeded / failed / superseded)."""

    queryset = ScaleAction.objects.all()
    serializer_class = ScaleActionSerializer
    team_field = "deployment__team"
    filterset_fields = ["deployment", "status"]
    ordering_fields = ["created_at"]


class ControlViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Kill switch and manual pin per deployment (the URL id is the deployment id)."""

    serializer_class = ControlSerializer
    permission_classes = [permissions.IsAuthenticated]
    queryset = DeploymentControl.objects.all()

    def _deployment(self, pk: str | None, *, write: bool) -> Deployment:
        queryset = team_scoped(Deployment.objects.all(), user=self.request.user)
        deployment_id = parse_id(pk)
        deployment = queryset.filter(pk=deployment_id).first() if deployment_id else None
        if deployment is None:
            raise NotFound("No such deployment.")
        if write and not user_has_role(
            user=self.request.user, team_id=deployment.team_id, role=Role.OPERATOR
        ):
            raise PermissionDenied("This needs the operator role in the team.")
        return deployment

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        deployment = self._deployment(pk, write=False)
        control, _ = DeploymentControl.objects.get_or_create(deployment=deployment)
        return Response(ControlSerializer(control).data)

    @extend_schema(request=PauseSerializer, responses=ControlSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Stop (or resume) scale actions for this deployment; decisions are still recorded."""
        deployment = self._deployment(pk, write=True)
        body = PauseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        control = deployment_pause_set(
            deployment=deployment, paused=body.validated_data["paused"], actor=request.user
        )
        return Response(ControlSerializer(control).data)

    @extend_schema(request=PinSerializer, responses=ControlSerializer)
    @action(detail=True, methods=["post"])
    def pin(self, request: Request, pk: str | None = None) -> Response:
        """Hold at N replicas for a while (default 30 minutes), within min/max."""
        deployment = self._deployment(pk, write=True)
        body = PinSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            control = deployment_pin(
                deployment=deployment,
                actor=request.user,
                replicas=body.validated_data["replicas"],
                minutes=body.validated_data["minutes"],
            )
        except ValueError as exc:
            raise ValidationError({"replicas": [str(exc)]}) from exc
        return Response(ControlSerializer(control).data)

    @extend_schema(request=None, responses=ControlSerializer)
    @action(detail=True, methods=["post"])
    def unpin(self, request: Request, pk: str | None = None) -> Response:
        """Release a pin."""
        deployment = self._deployment(pk, write=True)
        return Response(
            ControlSerializer(deployment_unpin(deployment=deployment, actor=request.user)).data
        )


class GlobalPauseView(APIView):
    """Fleet-wide kill switch: GET reads it, POST (superusers) sets it."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=PauseSerializer)
    def get(self, request: Request) -> Response:
        return Response({"paused": global_pause_active()})

    @extend_schema(request=PauseSerializer, responses=PauseSerializer)
    def post(self, request: Request) -> Response:
        if not request.user.is_superuser:
            raise PermissionDenied("Only superusers pause or resume the whole fleet.")
        body = PauseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        switch = global_pause_set(paused=body.validated_data["paused"], actor=request.user)
        return Response({"paused": switch.enabled})


PROMETHEUS_UNAVAILABLE = inline_serializer(
    name="PrometheusUnavailable",
    fields={
        "detail": serializers.CharField(help_text="What Prometheus answered, or why it did not."),
        "code": serializers.CharField(help_text="Always `prometheus_unavailable`."),
    },
)


class BacktestView(APIView):
    """Replay a policy over a past range of the deployment's metrics (read from Prometheus)
    and compare the replica timeline it would have produced with what actually ran. 503
    when Prometheus cannot be read (down, unreachable, timing out): nothing was replayed,
    and the same request can be sent again."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=BacktestRequestSerializer,
        responses={200: BacktestResultSerializer, 503: PROMETHEUS_UNAVAILABLE},
    )
    def post(self, request: Request) -> Response:
        body = BacktestRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        deployment: Deployment = data["deployment"]
        start, end, step_s = data["start"].timestamp(), data["end"].timestamp(), data["step_s"]
        try:
            policy = backtest_policy(deployment=deployment, overrides=data.get("policy"))
        except BacktestError as exc:
            raise ValidationError({"policy": [str(exc)]}) from exc
        try:
            result = backtest_run(
                deployment=deployment, policy=policy, start=start, end=end, step_s=step_s
            )
        except BacktestError as exc:
            if exc.unavailable:
                return Response(
                    {"detail": str(exc), "code": "prometheus_unavailable"},
                    status=status.HTTP_503_SERVICE_UNAVAILABLE,
                )
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(backtest_payload(result, deployment.pk, data["timeline"]))
