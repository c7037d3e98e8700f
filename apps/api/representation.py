"""Rendering rows of a model serializer faster, with exactly the output DRF would give.

DRF renders each field of each row through the same generic steps: find the attribute by
walking its source path, catch the exceptions a missing one raises, check for ``None``,
then call the field's ``to_representation`` (a datetime also looks up the active time zone
every time). For a 50-row page that is most of the request. Here each readable field gets
one step, chosen once per serializer: a plain column of the model read by ``getattr`` and
converted by a function equivalent to the field's own (``CharField``, ``IntegerField``,
``FloatField``, ``BooleanField``, ``ChoiceField``, ``JSONField``, ``DateTimeField`` in
ISO 8601, a primary-key relation read from its ``*_id`` column, a
``SerializerMethodField``); any other field keeps DRF's generic step. A serializer class
that overrides ``to_representation`` is left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import timezone
from rest_framework import ISO_8601, relations, serializers
from rest_framework import fields as drf_fields
from rest_framework.fields import SkipField, empty
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import BindingDict

from .serializers import TeamScopedRelatedField

Step = Callable[[Any], Any]

_BigIntegerField: type[drf_fields.Field] = drf_fields.BigIntegerField  # type: ignore[attr-defined]
_PK_RELATIONS = (relations.PrimaryKeyRelatedField, TeamScopedRelatedField)


def _generic_step(field: drf_fields.Field) -> Step:
    """DRF's own steps for one field (raises SkipField like DRF does)."""

    def step(instance: Any) -> Any:
        attribute = field.get_attribute(instance)
        check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        return None if check_for_none is None else field.to_representation(attribute)

    return step


def _column(model: type[models.Model] | None, field: drf_fields.Field) -> models.Field | None:
    """The model column a field reads directly, if it reads one."""
    if model is None or len(field.source_attrs) != 1:
        return None
    try:
        column = model._meta.get_field(field.source_attrs[0])
    except FieldDoesNotExist:
        return None
    return column if isinstance(column, models.Field) and column.concrete else None


def _converter(field: drf_fields.Field, column: models.Field) -> Callable[[Any], Any] | None:
    """A function giving what ``field.to_representation`` gives for a non-None value."""
    kind = type(field)
    if isinstance(field, _PK_RELATIONS) and kind in _PK_RELATIONS:
        if field.pk_field is None and column.many_to_one:
            return _identity
        return None
    if kind in _STRING_FIELDS:
        return _as_str
    if kind is drf_fields.IntegerField:
        return int
    if kind is _BigIntegerField:
        return field.to_representation
    if kind is drf_fields.FloatField:
        return float
    if kind is drf_fields.BooleanField:
        return lambda value: value if type(value) is bool else field.to_representation(value)
    if kind is drf_fields.ChoiceField:
        mapping = field.choice_strings_to_values  # type: ignore[attr-defined]
        return lambda value: value if value == "" else mapping.get(str(value), value)
    if kind is drf_fields.JSONField and not field.binary:  # type: ignore[attr-defined]
        return _identity
    if kind is drf_fields.DateTimeField:
        return _datetime_converter(field)
    return None


# CharField and its subclasses that render as it does: ``str(value)``.
_STRING_FIELDS = (
    drf_fields.CharField,
    drf_fields.EmailField,
    drf_fields.SlugField,
    drf_fields.URLField,
)


def _identity(value: Any) -> Any:
    return value


def _as_str(value: Any) -> str:
    return value if type(value) is str else str(value)


def _datetime_converter(field: drf_fields.Field) -> Callable[[Any], Any] | None:
    convert = _datetime_converter_in(field)
    return None if convert is None else convert(timezone.get_current_timezone())


def _datetime_converter_in(
    field: drf_fields.Field,
) -> Callable[[Any], Callable[[Any], Any]] | None:
    """For an ISO 8601 ``DateTimeField`` without its own time zone: a function from the
    active time zone (fixed for the request that renders) to the converter."""
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if (
        hasattr(field, "timezone")
        or not settings.USE_TZ
        or not isinstance(output_format, str)
        or output_format.lower() != ISO_8601
    ):
        return None

    def in_zone(zone: Any) -> Callable[[Any], Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, str) or not value or not timezone.is_aware(value):
                return field.to_representation(value)
            try:
                text = value.astimezone(zone).isoformat()
            except OverflowError:
                return field.to_representation(value)
            return text[:-6] + "Z" if text.endswith("+00:00") else text

        return convert

    return in_zone


def _step(serializer: serializers.Serializer[Any], field: drf_fields.Field) -> Step:
    if type(field) is drf_fields.SerializerMethodField:
        method: Step = getattr(serializer, field.method_name)
        return method
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    column = _column(model, field)
    if column is None:
        return _generic_step(field)
    convert = _converter(field, column)
    if convert is None:
        return _generic_step(field)
    attname = column.attname

    def step(instance: Any) -> Any:
        value = getattr(instance, attname)
        return None if value is None else convert(value)

    return step


def _apply(steps: list[tuple[str, Step]], instance: Any) -> dict[str, Any]:
    """The row's representation: each field's step, skipping those that raise SkipField."""
    ret: dict[str, Any] = {}
    for name, step in steps:
        try:
            ret[name] = step(instance)
        except SkipField:
            continue
    return ret


def _compiled(serializer: serializers.Serializer[Any]) -> Callable[[Any], dict[str, Any]]:
    steps: list[tuple[str, Step]] | None = None

    def to_representation(instance: Any) -> dict[str, Any]:
        nonlocal steps
        if steps is None:
            steps = [(str(f.field_name), _step(serializer, f)) for f in serializer._readable_fields]
        return _apply(steps, instance)

    return to_representation


# Per serializer class, the fields ModelSerializer.get_fields() builds: they depend on the
# class alone (its Meta and declared fields), not on the instance, context or request.
_field_prototypes: dict[type[Any], dict[str, drf_fields.Field]] = {}


def _fields_from_prototype(serializer: serializers.ModelSerializer[Any]) -> None:
    """Gives ``serializer`` its fields by copying the class's prototype: a copy re-creates
    each field from its arguments, while get_fields() also introspects every model field."""
    if "fields" in serializer.__dict__:
        return
    prototype = _field_prototypes.get(type(serializer))
    if prototype is None:
        prototype = _field_prototypes[type(serializer)] = serializer.get_fields()
    fields = BindingDict(serializer)
    for name, field in copy.deepcopy(prototype).items():
        fields[name] = field
    serializer.__dict__["fields"] = fields


# ModelSerializer methods and properties whose override could make the fields depend on the
# instance.
_FIELD_HOOKS = (
    "get_fields",
    "get_field_names",
    "get_extra_kwargs",
    "build_field",
    "fields",
    "_readable_fields",
)


# Field types whose rendering reads nothing but the row and the field's own arguments
# (not the request, the context or the parent serializer): a copy built once per
# serializer class renders every request's rows alike.
_DETACHABLE = frozenset(
    {
        _BigIntegerField,
        drf_fields.BooleanField,
        drf_fields.CharField,
        drf_fields.ChoiceField,
        drf_fields.DateField,
        drf_fields.DateTimeField,
        drf_fields.DecimalField,
        drf_fields.DictField,
        drf_fields.EmailField,
        drf_fields.FloatField,
        drf_fields.IntegerField,
        drf_fields.JSONField,
        drf_fields.ListField,
        drf_fields.ReadOnlyField,
        drf_fields.SlugField,
        drf_fields.URLField,
        drf_fields.UUIDField,
        relations.PrimaryKeyRelatedField,
        relations.SlugRelatedField,
        TeamScopedRelatedField,
    }
)


def _detachable(field: drf_fields.Field) -> bool:
    if type(field) not in _DETACHABLE or (field.default is not empty and callable(field.default)):
        return False
    child = getattr(field, "child", None)
    return child is None or _detachable(child)


# A serializer class's plan: per readable field, in order, its name and either a ready
# step, ("method", name) for a SerializerMethodField bound to each serializer, or
# ("datetime", (attname, function of the time zone)). None: the class has a field whose
# rendering may depend on the request, so each serializer compiles its own steps.
_Entry = tuple[str, str, Any]
_plans: dict[type[Any], tuple[_Entry, ...] | None] = {}


def _plan(serializer: serializers.ModelSerializer[Any]) -> tuple[_Entry, ...] | None:
    cls = type(serializer)
    if cls in _plans:
        return _plans[cls]
    # The fields, bound (names, sources) to a stand-in of the class that holds no request
    # and no context, so the plan keeps nothing of the request that built it.
    stand_in = cls.__new__(cls)
    stand_in.__dict__.update(parent=None, _context={}, partial=False, instance=None)
    fields = BindingDict(stand_in)
    prototype = _field_prototypes.get(cls)
    if prototype is None:
        prototype = _field_prototypes[cls] = serializer.get_fields()
    for name, field in copy.deepcopy(prototype).items():
        fields[name] = field
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    entries: list[_Entry] = []
    planned = True
    for field in fields.values():
        if field.write_only:
            continue
        name = str(field.field_name)
        if type(field) is drf_fields.SerializerMethodField:
            entries.append((name, "method", field.method_name))
            continue
        column = _column(model, field)
        if column is not None and type(field) is drf_fields.DateTimeField:
            in_zone = _datetime_converter_in(field)
            if in_zone is not None:
                entries.append((name, "datetime", (column.attname, in_zone)))
                continue
        elif column is not None:
            convert = _converter(field, column)
            if convert is not None:
                entries.append((name, "step", _column_step(column.attname, convert)))
                continue
        if not _detachable(field):
            planned = False
            break
        entries.append((name, "step", _attribute_step(field)))
    plan = tuple(entries) if planned else None
    _plans[cls] = plan
    return plan


def _attribute_step(field: drf_fields.Field) -> Step:
    """DRF's steps for a field reading one plain attribute (a property, a related object),
    without the generic path walk; anything unusual (a mapping, a missing attribute, a
    callable) goes through DRF's own steps."""
    generic = _generic_step(field)
    if len(field.source_attrs) != 1 or (
        isinstance(field, relations.RelatedField) and field.use_pk_only_optimization()
    ):
        return generic
    attr = field.source_attrs[0]
    to_representation = field.to_representation

    def step(instance: Any) -> Any:
        if isinstance(instance, Mapping):
            return generic(instance)
        try:
            value = getattr(instance, attr)
        except Exception:  # noqa: BLE001 - DRF's steps decide what a failure means
            return generic(instance)
        if value is None:
            return None
        if callable(value):
            return generic(instance)
        return to_representation(value)

    return step


def _column_step(attname: str, convert: Callable[[Any], Any]) -> Step:
    def step(instance: Any) -> Any:
        value = getattr(instance, attname)
        return None if value is None else convert(value)

    return step


def _planned(
    serializer: serializers.Serializer[Any], plan: tuple[_Entry, ...]
) -> Callable[[Any], dict[str, Any]]:
    steps: list[tuple[str, Step]] | None = None

    def to_representation(instance: Any) -> dict[str, Any]:
        nonlocal steps
        if steps is None:
            zone = timezone.get_current_timezone()  # fixed for the request that renders
            steps = []
            for name, kind, payload in plan:
                if kind == "step":
                    steps.append((name, payload))
                elif kind == "method":
                    steps.append((name, getattr(serializer, payload)))
                else:
                    attname, in_zone = payload
                    steps.append((name, _column_step(attname, in_zone(zone))))
        return _apply(steps, instance)

    return to_representation


def fast_representation(serializer: serializers.BaseSerializer[Any]) -> None:
    """Makes ``serializer`` (or, for ``many=True``, its child) render rows through compiled
    steps. Serializers with their own ``to_representation`` or ``get_fields`` are left as
    they are. When every field of the class renders from the row alone, the steps come from
    a plan made once per class, and the serializer's own fields are never built."""
    target = serializer.child if isinstance(serializer, serializers.ListSerializer) else serializer
    if (
        isinstance(target, serializers.ModelSerializer)
        and type(target).to_representation is serializers.Serializer.to_representation
        and all(
            getattr(type(target), hook) is getattr(serializers.ModelSerializer, hook)
            for hook in _FIELD_HOOKS
        )
    ):
        plan = None if "fields" in target.__dict__ else _plan(target)
        if plan is not None:
            target.to_representation = _planned(target, plan)  # type: ignore[method-assign,assignment]
            return
        _fields_from_prototype(target)
        target.to_representation = _compiled(target)  # type: ignore[method-assign,assignment]
