"""The toggles management API: toggles (create with a preset, change, flip with a reason,
history), degradation policies (their state, transitions, pin and unpin) and the global
switch of automatic degradation. Every change goes through :mod:`.services`, which
validates, audits, records the history and bumps the team's toggle version; gateways read
toggles elsewhere (OFREP, snapshots) with their own tokens."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from apps.api.viewsets import TeamScopedViewSet

from .filters import DegradationPolicyFilter, ToggleFilter
from .models import DegradationPolicy, DegradationSwitch, Toggle
from .serializers import (
    DegradationPolicySerializer,
    DegradationSwitchSerializer,
    DegradationTransitionSerializer,
    FlipSerializer,
    LevelPinSerializer,
    LevelUnpinSerializer,
    ToggleChangeSerializer,
    ToggleSerializer,
)
from .services import (
    UPDATABLE,
    degradation_switch_set,
    policy_delete,
    policy_pin,
    policy_unpin,
    toggle_create,
    toggle_delete,
    toggle_update,
)


class ToggleViewSet(TeamScopedViewSet):
    """Degradation toggles of a team or one of its deployments. Writes need the operator
    role; every change is kept in the toggle's history with its reason."""

    queryset = Toggle.objects.all()
    serializer_class = ToggleSerializer
    filterset_class = ToggleFilter
    ordering_fields = ["key", "updated_at", "created_at"]
    search_fields = ["key", "description"]
    lookup_value_regex = r"\d+"

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        self._require_role(data["team"].pk)
        serializer.instance = toggle_create(
            team=data["team"],
            deployment=data.get("deployment"),
            key=data["key"],
            actor=self.request.user,
            preset=data.get("preset", "custom"),
            value_type=data.get("value_type"),
            value=data.get("value"),
            off_value=data.get("off_value"),
            rules=data.get("rules"),
            enabled=data.get("enabled", False),
            description=data.get("description", ""),
            reason=data.get("reason", ""),
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert isinstance(serializer.instance, Toggle)
        data = serializer.validated_data
        changes = {name: data[name] for name in UPDATABLE if name in data}
        serializer.instance = toggle_update(
            toggle=serializer.instance,
            actor=self.request.user,
            reason=data.get("reason", ""),
            **changes,
        )

    def perform_destroy(self, instance: Toggle) -> None:  # type: ignore[override]
        toggle_delete(toggle=instance, actor=self.request.user)

    def _writable(self) -> Toggle:
        toggle: Toggle = self.get_object()
        self._require_role(toggle.team_id)
        return toggle

    @extend_schema(request=FlipSerializer, responses=ToggleSerializer)
    @action(detail=True, methods=["post"])
    def flip(self, request: Request, pk: str | None = None) -> Response:
        """Turn the toggle on or off, saying why (kept in its history and the audit log).
        A degradation override, if any, still wins until its policy clears it."""
        toggle = self._writable()
        body = FlipSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        toggle = toggle_update(
            toggle=toggle,
            actor=request.user,
            reason=body.validated_data["reason"],
            enabled=body.validated_data["enabled"],
        )
        return Response(self.get_serializer(toggle).data)

    @extend_schema(responses=ToggleChangeSerializer(many=True))
    # The toggle list's filters do not apply to one toggle's history.
    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Changes of what the toggle serves, newest first, with who and why."""
        toggle = self.get_object()
        page = self.paginate_queryset(toggle.changes.order_by("-at", "-id"))
        return self.get_paginated_response(ToggleChangeSerializer(page, many=True).data)


class DegradationPolicyViewSet(TeamScopedViewSet):
    """Automatic degradation policies of a deployment: triggers, ordered levels of toggle
    settings, hysteresis, dry run; with their current state, transitions and a pin."""

    queryset = DegradationPolicy.objects.select_related("state")
    serializer_class = DegradationPolicySerializer
    filterset_class = DegradationPolicyFilter
    ordering_fields = ["name", "updated_at", "created_at"]
    search_fields = ["name"]

    def team_id_from_data(self, data: dict[str, Any]) -> int | None:
        deployment = data.get("deployment")
        return deployment.team_id if deployment is not None else None

    def perform_destroy(self, instance: DegradationPolicy) -> None:  # type: ignore[override]
        policy_delete(policy=instance, actor=self.request.user)

    def _writable(self) -> DegradationPolicy:
        policy: DegradationPolicy = self.get_object()
        self._require_role(policy.team_id)
        return policy

    def _fresh(self, policy: DegradationPolicy) -> Response:
        fresh = self.get_queryset().get(pk=policy.pk)
        return Response(self.get_serializer(fresh).data)

    @extend_schema(request=LevelPinSerializer, responses=DegradationPolicySerializer)
    @action(detail=True, methods=["post"])
    def pin(self, request: Request, pk: str | None = None) -> Response:
        """Apply a level now and hold it (automation leaves a pinned policy alone) until
        unpinned or ``until``."""
        policy = self._writable()
        body = LevelPinSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        policy_pin(
            policy=policy,
            level=body.validated_data["level"],
            actor=request.user,
            reason=body.validated_data["reason"],
            until=body.validated_data.get("until"),
        )
        return self._fresh(policy)

    @extend_schema(request=LevelUnpinSerializer, responses=DegradationPolicySerializer)
    @action(detail=True, methods=["post"])
    def unpin(self, request: Request, pk: str | None = None) -> Response:
        """Hand the policy back to automation; the level stays until its next evaluation."""
        policy = self._writable()
        body = LevelUnpinSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        policy_unpin(policy=policy, actor=request.user, reason=body.validated_data["reason"])
        return self._fresh(policy)

    @extend_schema(responses=DegradationTransitionSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def transitions(self, request: Request, pk: str | None = None) -> Response:
        """Level changes, newest first (dry-run ones marked), with their reasons."""
        policy = self.get_object()
        rows: QuerySet[Any] = policy.transitions.order_by("-at", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DegradationTransitionSerializer(page, many=True).data)


class DegradationSwitchView(APIView):
    """The global switch of automatic degradation. Anyone signed in reads it; only
    superusers switch it, since it stops the policies of every team (pins and manual
    flips keep working)."""

    permission_classes = [permissions.IsAuthenticated]

    def _current(self) -> DegradationSwitch:
        return DegradationSwitch.objects.filter(pk=1).first() or DegradationSwitch()

    @extend_schema(responses=DegradationSwitchSerializer)
    def get(self, request: Request) -> Response:
        return Response(DegradationSwitchSerializer(self._current()).data)

    @extend_schema(request=DegradationSwitchSerializer, responses=DegradationSwitchSerializer)
    def put(self, request: Request) -> Response:
        if not request.user.is_superuser:
            raise PermissionDenied("Only superusers switch automatic degradation for all teams.")
        body = DegradationSwitchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        switch = degradation_switch_set(
            automatic=body.validated_data["automatic"],
            actor=request.user,
            reason=body.validated_data["reason"],
        )
        return Response(DegradationSwitchSerializer(switch).data, status=status.HTTP_200_OK)
