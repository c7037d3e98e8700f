"""The alerts API: alerts, silences, inhibit rules, channels, routes, deliveries, alert rules,
receiver credentials and the Alertmanager webhook (with its receiver-token authentication).
Ingest, grouping, notification and delivery live in :mod:`.services` and the modules it
calls."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import (
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from apps.accounts.authentication import (
    BearerTokenAuthentication,
    BearerTokenScheme,
    TokenKind,
    TokenRefused,
    basic_credentials,
)
from apps.accounts.models import Role
from apps.accounts.selectors import team_ids_for_user, team_scoped, user_has_role
from apps.accounts.throttling import FailureLimit
from apps.api.parsers import BoundedJSONParser
from apps.api.viewsets import (
    IdLookupMixin,
    TeamScopedReadOnlyViewSet,
    TeamScopedViewSet,
)
from apps.audit.models import AuditAction
from apps.audit.services import audited

from .delivery import channel_test_send
from .models import (
    Alert,
    AlertRule,
    AlertSource,
    Channel,
    Delivery,
    InhibitRule,
    Receiver,
    Route,
    Silence,
)
from .payloads import PayloadError, parse_alertmanager
from .selectors import receiver_authenticate, silences_active
from .serializers import (
    AcknowledgeSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    ChannelSerializer,
    ChannelTestSerializer,
    DeliverySerializer,
    InhibitRuleSerializer,
    IssuedReceiverSerializer,
    ReceiverSerializer,
    RouteSerializer,
    SilenceSerializer,
)
from .services import (
    alert_acknowledge,
    alerts_ingest,
    receiver_create,
    silence_create,
    silence_expire,
)


class AlertViewSet(TeamScopedReadOnlyViewSet):
    """Alerts from every source, deduplicated per team by label fingerprint."""

    queryset = Alert.objects.select_related("deployment")
    serializer_class = AlertSerializer
    lookup_value_regex = r"\d+"
    filterset_fields = ["status", "severity", "source", "team", "deployment", "name", "fingerprint"]
    ordering_fields = ["starts_at", "received_at"]
    search_fields = ["name", "fingerprint"]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        user = self.request.user
        if user.is_authenticated:
            teams = None if user.is_superuser else team_ids_for_user(user=user)
            context["active_silences"] = silences_active(team_ids=teams, now=timezone.now())
        return context

    @extend_schema(request=AcknowledgeSerializer, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Acknowledge: someone is on it. Stops repeat notifications while it keeps firing."""
        alert = self.get_object()
        if not user_has_role(user=request.user, team_id=alert.team_id, role=Role.OPERATOR):
            raise PermissionDenied("This needs the operator role in the team.")
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = alert_acknowledge(
            alert=alert, actor=request.user, comment=body.validated_data.get("comment", "")
        )
        return Response(self.get_serializer(alert).data)


class SilenceViewSet(TeamScopedViewSet):
    """Mute alerts matching label matchers for a while, with author and comment."""

    queryset = Silence.objects.select_related("created_by")
    include_global = True  # silences for every team
    serializer_class = SilenceSerializer
    filterset_fields = ["team"]
    ordering_fields = ["starts_at", "ends_at"]

    def team_id_from_data(self, data: dict[str, Any]) -> int | None:
        # A silence for every team (team empty) is the superusers' to create or to turn
        # an existing silence into.
        if "team" in data and data["team"] is None and not self.request.user.is_superuser:
            raise PermissionDenied("Only superusers create silences for every team.")
        team = data.get("team")
        return team.pk if team is not None else None

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = {"team": None, **serializer.validated_data}
        team_id = self.team_id_from_data(data)
        if team_id is not None:
            self._require_role(team_id)
        serializer.instance = silence_create(
            team=data["team"],
            matchers=data["matchers"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            comment=data["comment"],
            actor=self.request.user,
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        instance = serializer.instance
        if instance is not None and not self.request.user.is_superuser:
            if instance.team_id is None:
                raise PermissionDenied("Only superusers change silences for every team.")
            self._require_role(instance.team_id)
        super().perform_update(serializer)

    def perform_destroy(self, instance: Any) -> None:
        if instance.team_id is None and not self.request.user.is_superuser:
            raise PermissionDenied("Only superusers remove silences for every team.")
        if instance.team_id is not None:
            self._require_role(instance.team_id)
        super().perform_destroy(instance)

    @extend_schema(request=None, responses=SilenceSerializer)
    @action(detail=True, methods=["post"])
    def expire(self, request: Request, pk: str | None = None) -> Response:
        """End the silence now (kept for the record)."""
        silence = self.get_object()
        if silence.team_id is None and not request.user.is_superuser:
            raise PermissionDenied("Only superusers expire silences for every team.")
        if silence.team_id is not None:
            self._require_role(silence.team_id)
        return Response(
            self.get_serializer(silence_expire(silence=silence, actor=request.user)).data
        )


class InhibitRuleViewSet(TeamScopedViewSet):
    """Mute target alerts while a matching source alert fires (equal labels)."""

    queryset = InhibitRule.objects.all()
    serializer_class = InhibitRuleSerializer
    filterset_fields = ["team", "enabled"]


class ChannelViewSet(TeamScopedViewSet):
    """Chat channels (Slack, Feishu/Lark, DingTalk, WeCom, Teams, webhook). Settings are
    write-only and stored encrypted."""

    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    filterset_fields = ["team", "kind", "enabled"]
    ordering_fields = ["name"]

    @extend_schema(request=ChannelTestSerializer, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test message now; answers with the recorded delivery (sent or failed)."""
        channel = self.get_object()
        self._require_role(channel.team_id)
        body = ChannelTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        delivery = channel_test_send(
            channel=channel, language=body.validated_data.get("language") or channel.language
        )
        return Response(DeliverySerializer(delivery).data)


class RouteViewSet(TeamScopedViewSet):
    """Which alerts of a team go to which channels, grouped how and how often."""

    queryset = Route.objects.prefetch_related("channels")
    serializer_class = RouteSerializer
    filterset_fields = ["team", "enabled"]
    ordering_fields = ["position"]


class DeliveryViewSet(TeamScopedReadOnlyViewSet):
    """Every message sent (or tried): attempts, status code, latency, error."""

    serializer_class = DeliverySerializer
    queryset = Delivery.objects.all()
    team_field = "channel__team"
    filterset_fields = ["channel", "status", "group"]
    ordering_fields = ["created_at", "sent_at"]


class AlertRuleViewSet(TeamScopedViewSet):
    """Threshold rules on a catalogue signal or PromQL, with a `for` duration."""

    queryset = AlertRule.objects.all()
    serializer_class = AlertRuleSerializer
    filterset_fields = ["team", "deployment", "enabled", "severity"]


class ReceiverViewSet(
    IdLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Credentials for Alertmanager's webhook. The token is shown once, at creation;
    DELETE revokes it and removes the receiver (404 afterwards; the audit log keeps it)."""

    serializer_class = ReceiverSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["team"]

    def get_queryset(self) -> QuerySet[Receiver]:
        return team_scoped(Receiver.objects.all(), user=self.request.user)

    @extend_schema(responses={201: IssuedReceiverSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ReceiverSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        team = body.validated_data["team"]
        if not user_has_role(user=request.user, team_id=team.pk, role=Role.ADMIN):
            raise PermissionDenied("This needs the admin role in the team.")
        receiver, token = receiver_create(
            team=team, name=body.validated_data["name"], actor=request.user
        )
        data = dict(ReceiverSerializer(receiver).data)
        data["token"] = token
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        description="Revoke the receiver's token and remove the receiver: Alertmanager's "
        "next webhook call answers 401, and the receiver answers 404 afterwards."
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Receiver) -> None:
        if not user_has_role(user=self.request.user, team_id=instance.team_id, role=Role.ADMIN):
            raise PermissionDenied("This needs the admin role in the team.")
        with (
            transaction.atomic(),
            audited(actor=self.request.user, action=AuditAction.DELETE, instance=instance),
        ):
            instance.revoked_at = instance.revoked_at or timezone.now()
            instance.save(update_fields=["revoked_at"])
            instance.delete()


class _IngestResult(serializers.Serializer):
    received = serializers.IntegerField(help_text="Alerts in the payload.")
    created = serializers.IntegerField(help_text="New alerts.")
    updated = serializers.IntegerField(help_text="Known alerts updated.")
    resolved = serializers.IntegerField(help_text="Alerts that became resolved.")


def receiver_token_limit() -> FailureLimit:
    return FailureLimit(
        "receiver-token", settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    )


def _receiver_resolve(scheme: str, credentials: str) -> tuple[AnonymousUser, Receiver]:
    if scheme == "bearer":
        receiver = receiver_authenticate(token=credentials.strip())
    else:
        user, password = basic_credentials(credentials)
        receiver = receiver_authenticate(token=password, name=user)
    if receiver is None:
        raise TokenRefused("Unknown or revoked receiver token.")
    return AnonymousUser(), receiver


# Guessing receiver tokens is slowed down like guessing API tokens: failures are counted
# per client address, and past the limit every attempt from it is 429.
RECEIVER_TOKEN = TokenKind(
    name="receiver token",
    realm="alert receiver",
    limit=receiver_token_limit,
    schemes=("bearer", "basic"),
    missing="Authentication credentials were not provided: send the receiver token as "
    "'Authorization: Bearer <token>' or as the password of basic auth with the "
    "receiver name as user (Alertmanager http_config).",
    resolve=_receiver_resolve,
)


class ReceiverTokenAuthentication(BearerTokenAuthentication):
    """A receiver token as ``Authorization: Bearer <token>``, or as the password of basic
    auth with the receiver's name as user: what Alertmanager's ``http_config`` sends."""

    kind = RECEIVER_TOKEN


class ReceiverTokenScheme(BearerTokenScheme):
    target_class = "apps.alerts.api.ReceiverTokenAuthentication"
    name = "receiverToken"
    description = (
        "A receiver token from POST /api/v1/alerts/receivers/, as "
        "`Authorization: Bearer <token>` (or basic auth: receiver name and token)."
    )


class HasReceiver(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.auth, Receiver)


class AlertmanagerWebhookView(APIView):
    """Alertmanager webhook receiver (payload version 4). Answers 200 only once every alert
    is stored, so Alertmanager retries when we fail."""

    authentication_classes = [ReceiverTokenAuthentication]
    permission_classes = [HasReceiver]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request={"application/json": dict},
        responses={200: _IngestResult, 400: OpenApiResponse(description="Malformed payload.")},
    )
    def post(self, request: Request) -> Response:
        receiver = request.auth
        assert isinstance(receiver, Receiver)
        try:
            payload = parse_alertmanager(request.data)
        except PayloadError as exc:
            raise ValidationError({"payload": [str(exc)]}) from exc
        report = alerts_ingest(
            alerts=payload.alerts, source=AlertSource.ALERTMANAGER, team=receiver.team
        )
        Receiver.objects.filter(pk=receiver.pk).update(last_used_at=timezone.now())
        return Response(
            {
                "received": report.received,
                "created": report.created,
                "updated": report.updated,
                "resolved": report.resolved,
            }
        )
