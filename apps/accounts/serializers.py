"""Request and response shapes of the accounts API (teams, memberships, API tokens, ``/me``);
no logic beyond field validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers
from rest_framework.validators import UniqueTogetherValidator

from apps.api.serializers import NameFieldsMixin, TeamScopedRelatedField

from .models import ApiToken, Membership, Team


def owning_team_field(
    *, help_text: str = "Owning team (id).", **kwargs: Any
) -> TeamScopedRelatedField:
    """A team reference (by id) limited to the teams the requester may use: the field of the
    objects a team owns, and of the requests that act in a team."""
    return TeamScopedRelatedField(
        queryset=Team.objects.all(), team_field="", help_text=help_text, **kwargs
    )


class TeamSerializer(NameFieldsMixin, serializers.ModelSerializer[Team]):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "description", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"id": {"help_text": "Team id."}}


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    team = owning_team_field(help_text="Team (id).")
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        help_text="Username of the member.",
        error_messages={"does_not_exist": "No active user has this username."},
    )

    class Meta:
        model = Membership
        fields = ["id", "team", "user", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"id": {"help_text": "Membership id."}}
        validators = [
            UniqueTogetherValidator(
                queryset=Membership.objects.all(),
                fields=["user", "team"],
                message="This user is already a member of the team.",
            )
        ]


class ApiTokenSerializer(NameFieldsMixin, serializers.ModelSerializer[ApiToken]):
    is_active = serializers.BooleanField(read_only=True, help_text="Neither revoked nor expired.")
    expires_in_days = serializers.IntegerField(
        write_only=True,
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Convenience for expires_at: the token expires this many days from now.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "expires_in_days",
            "revoked_at",
            "last_used_at",
            "is_active",
        ]
        read_only_fields = ["id", "prefix", "created_at", "revoked_at", "last_used_at"]
        extra_kwargs = {"id": {"help_text": "Token id (not the secret)."}}

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("expires_at must be in the future.")
        return value

    def validate(self, attrs):
        days = attrs.pop("expires_in_days", None)
        if days is not None:
            if attrs.get("expires_at") is not None:
                raise serializers.ValidationError(
                    {"expires_in_days": ["Give expires_at or expires_in_days, not both."]}
                )
            attrs["expires_at"] = timezone.now() + timedelta(days=days)
        return attrs


class IssuedApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        read_only=True,
        help_text="The secret. Shown only in this response: store it now, it cannot be read again.",
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class MeMembershipSerializer(serializers.Serializer):
    team = serializers.IntegerField(help_text="Team id.")
    team_slug = serializers.CharField(help_text="Team slug.")
    role = serializers.CharField(help_text="Your role in the team.")


class MeSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="Your username.")
    is_superuser = serializers.BooleanField(help_text="Superusers see and change every team.")
    memberships = MeMembershipSerializer(many=True, help_text="Your teams and roles.")


# --------------------------------------------------------------------------- team tokens

TEAM_TOKEN_FIELDS = ["id", "team", "name", "token_prefix", "created_at", "last_used_at",
                     "revoked_at"]  # fmt: skip


class TeamTokenSerializer(serializers.ModelSerializer[Any]):
    """Base of a team token kind's serializer (ingest tokens, gateway tokens): its ``Meta``
    names the model. The secret is never part of it (see :func:`issued_serializer`)."""

    id = serializers.IntegerField(read_only=True, help_text="Token id.")
    team = owning_team_field()

    class Meta:
        fields = TEAM_TOKEN_FIELDS
        read_only_fields = ["token_prefix", "created_at", "last_used_at", "revoked_at"]
        extra_kwargs = {
            "name": {"help_text": "What it is for (unique in the team)."},
            "token_prefix": {"help_text": "The secret's first characters, to recognise it."},
            "created_at": {"help_text": "When it was created."},
            "last_used_at": {"help_text": "Last use (written at most once a minute)."},
            "revoked_at": {"help_text": "When it was revoked; empty while it works."},
        }


def issued_serializer(base: type[TeamTokenSerializer]) -> type[TeamTokenSerializer]:
    """The creation's answer of a token kind: its serializer plus the secret."""

    class Issued(base):  # type: ignore[valid-type,misc]
        token = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

        class Meta(base.Meta):  # type: ignore[name-defined]
            fields = [*base.Meta.fields, "token"]

    Issued.__name__ = Issued.__qualname__ = f"Issued{base.__name__}"
    return Issued
