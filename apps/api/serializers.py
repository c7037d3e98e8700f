"""Serializer building blocks shared by every app's API: foreign keys limited to the caller's
teams, model ``clean()`` run on validation, and name fields."""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import QuerySet
from rest_framework import serializers

from apps.accounts.selectors import team_scoped


class TeamScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key that only accepts objects of teams the caller is a member of.

    Another team's object reads as "does not exist", the same as its 404 elsewhere.
    """

    def __init__(self, *, team_field: str = "team", **kwargs: Any) -> None:
        self.team_field = team_field
        super().__init__(**kwargs)

    def __deepcopy__(self, memo: Any) -> TeamScopedRelatedField:
        # DRF deep-copies every declared field for every serializer it builds, i.e. on
        # every request; deep-copying a QuerySet copies its whole query tree. An unevaluated
        # queryset's .all() is an equivalent, much cheaper clone.
        kwargs: dict[str, Any] = {
            key: value.all()
            if key == "queryset" and isinstance(value, QuerySet)
            else value
            if key in ("validators", "regex")
            else copy.deepcopy(value, memo)
            for key, value in self._kwargs.items()  # type: ignore[attr-defined]
        }
        args = copy.deepcopy(self._args, memo)  # type: ignore[attr-defined]
        return type(self)(*args, **kwargs)

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()
        assert queryset is not None
        request = self.context.get("request")
        if request is None:
            return queryset
        return team_scoped(queryset, user=request.user, team_field=self.team_field)


class ModelCleanMixin:
    """Runs the model's own ``clean()`` on the would-be object, so that single-model rules
    hold for the API and the admin alike and answer 400 per field."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # type: ignore[misc]
        model: type[models.Model] = self.Meta.model  # type: ignore[attr-defined]
        instance = self.instance if self.instance is not None else model()  # type: ignore[attr-defined]
        probe = model(
            **{f.attname: getattr(instance, f.attname) for f in model._meta.concrete_fields}
        )
        probe._state.adding = instance._state.adding
        for key, value in attrs.items():
            field = model._meta.get_field(key)
            if field.many_to_many or field.one_to_many:
                continue
            setattr(probe, key, value)
        plain_fields = [
            f for f in model._meta.concrete_fields if not f.is_relation and not f.primary_key
        ]
        given = {f.attname: getattr(probe, f.attname) for f in plain_fields}
        try:
            probe.clean()
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise serializers.ValidationError(
                    {
                        (k if k != "__all__" else "non_field_errors"): [
                            m for e in errs for m in e.messages
                        ]
                        for k, errs in exc.error_dict.items()
                    }
                ) from exc
            raise serializers.ValidationError({"non_field_errors": exc.messages}) from exc
        # clean() may normalise values (as it does for the admin's full_clean()): keep them.
        writable = {
            name
            for name, field in self.fields.items()  # type: ignore[attr-defined]
            if not field.read_only
        }
        for f in plain_fields:
            value = getattr(probe, f.attname)
            if f.name in writable and value != given[f.attname]:
                attrs[f.name] = value
        return attrs


def name_problem(value: str, *, allow_slash: bool = False) -> str | None:
    """Why ``value`` is not acceptable as a name shown in lists, chat messages, file names
    and label values, or None. Names are one printable line without path tricks."""
    if not value.isprintable():
        return "Use printable characters only: no line breaks, tabs or control characters."
    if ".." in value:
        return "Must not contain '..'."
    if "\\" in value or (not allow_slash and "/" in value):
        return "Must not contain '/' or '\\'." if not allow_slash else "Must not contain '\\'."
    if allow_slash and (value.startswith("/") or "//" in value):
        return "Must not start with '/' or contain '//'."
    return None


class NameValidator:
    """DRF validator for name-like fields; see :func:`name_problem`."""

    def __init__(self, *, allow_slash: bool = False) -> None:
        self.allow_slash = allow_slash

    def __call__(self, value: Any) -> None:
        if isinstance(value, str):
            problem = name_problem(value, allow_slash=self.allow_slash)
            if problem is not None:
                raise serializers.ValidationError(problem, code="invalid_name")


class NameFieldsMixin:
    """Adds :class:`NameValidator` to the writable fields listed in ``name_fields`` (and
    ``slash_name_fields``, where '/' is allowed, as in "meta-llama/Llama-3.1-8B"), on top of
    the model's own validators. At serializer level, so no model or migration changes."""

    name_fields: tuple[str, ...] = ("name",)
    slash_name_fields: tuple[str, ...] = ()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()  # type: ignore[misc]
        for names, allow_slash in ((self.name_fields, False), (self.slash_name_fields, True)):
            for name in names:
                field = fields.get(name)
                if field is not None and not field.read_only:
                    field.validators = [*field.validators, NameValidator(allow_slash=allow_slash)]
        return fields
