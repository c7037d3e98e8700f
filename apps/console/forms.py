"""Forms of the console: filters (the table/filter pattern), the autoscaling controls, the
backtest and the alerts page's. Choices are built from what the user may see, so a filter
can never name another team's object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException

from apps.accounts.selectors import AnyUser, teams_visible_to
from apps.alerts.models import AlertStatus, Severity, silence_matchers_clean
from apps.audit.models import AuditAction
from apps.autoscaling import engine
from apps.autoscaling.backtest import BacktestError, backtest_policy
from apps.autoscaling.models import AutoscalingPolicy
from apps.autoscaling.serializers import BacktestRequestSerializer
from apps.inventory.models import Deployment, DeploymentStatus, ServingFramework
from apps.logs.params import request_team_id
from apps.logs.query import LogQLError, parse_query
from apps.slos.models import SloState

from .selectors import DEFAULT_RANGE, RANGES, clusters_visible, deployments_visible


def _any(choices: Any, label: str = "any") -> list[tuple[str, str]]:
    return [("", label), *((str(value), str(text)) for value, text in choices)]


class FilterForm(forms.Form):
    """The table/filter pattern's form: each valid, non-empty field narrows the queryset by
    its lookup in ``lookups`` (field name → queryset lookup); an invalid filter is ignored.
    The choices of fields naming objects (``scoped_choices``) are those the user may see."""

    lookups: dict[str, str] = {}

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, choices in self.scoped_choices(user).items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = _any(choices)

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        """Field name → (value, label) pairs of the user's objects."""
        return {}

    def filter(self, queryset: Any) -> Any:
        """The queryset narrowed by the valid filters (an invalid one is ignored)."""
        if not self.is_valid():
            return queryset
        wanted = {lookup: self.cleaned_data.get(name) for name, lookup in self.lookups.items()}
        return queryset.filter(**{k: v for k, v in wanted.items() if v not in (None, "")})


class TeamFilterForm(FilterForm):
    """A list's filters, the first of them the team (choices: the user's teams)."""

    team = forms.ChoiceField(required=False)

    lookups = {"team": "team_id"}

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {"team": teams_visible_to(user=user).values_list("pk", "slug")}


class OverviewFilterForm(TeamFilterForm):
    framework = forms.ChoiceField(required=False, choices=_any(ServingFramework.choices))
    cluster = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=_any(DeploymentStatus.choices))

    lookups = {
        **TeamFilterForm.lookups,
        "framework": "framework",
        "cluster": "cluster_id",
        "status": "status",
    }

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {
            **super().scoped_choices(user),
            "cluster": clusters_visible(user=user).values_list("pk", "name"),
        }


class SloFilterForm(TeamFilterForm):
    state = forms.ChoiceField(required=False, choices=_any(SloState.choices))

    lookups = {**TeamFilterForm.lookups, "state": "status__state"}


class AuditFilterForm(TeamFilterForm):
    actor = forms.CharField(required=False, max_length=150, help_text="Username.")
    action = forms.ChoiceField(required=False, choices=_any(AuditAction.choices))
    object_type = forms.ChoiceField(required=False, label="Object type")
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    lookups = {
        **TeamFilterForm.lookups,
        "actor": "actor_repr",
        "action": "action",
        "object_type": "object_type",
        "since": "timestamp__gte",
        "until": "timestamp__lt",
    }

    def __init__(self, *args: Any, user: AnyUser, object_types: list[str], **kwargs: Any) -> None:
        self.object_types = object_types
        super().__init__(*args, user=user, **kwargs)

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {
            **super().scoped_choices(user),
            "object_type": [(name, name) for name in self.object_types],
        }


class RangeForm(forms.Form):
    range = forms.ChoiceField(
        choices=[(key, f"last {key}") for key in RANGES], required=False, initial=DEFAULT_RANGE
    )

    def range_key(self) -> str:
        return (self.cleaned_data.get("range") if self.is_valid() else None) or DEFAULT_RANGE


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500, help_text="Why; kept in the audit log.", strip=True, required=True
    )


class PinForm(ReasonForm):
    replicas = forms.IntegerField(min_value=0, help_text="Replica count to hold.")
    minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, help_text="Until now + this many minutes."
    )

    field_order = ["replicas", "minutes", "reason"]


class ToggleFlipForm(ReasonForm):
    enabled = forms.TypedChoiceField(
        choices=[("true", "on"), ("false", "off")], coerce=lambda value: value == "true"
    )


class DegradationPinForm(ReasonForm):
    level = forms.IntegerField(min_value=0, max_value=100, help_text="Level to hold.")
    minutes = forms.IntegerField(
        min_value=1,
        max_value=7 * 24 * 60,
        required=False,
        help_text="Hold it this many minutes; blank: until unpinned.",
    )

    field_order = ["level", "minutes", "reason"]

    def until(self) -> Any:
        minutes = self.cleaned_data.get("minutes")
        return timezone.now() + timedelta(minutes=minutes) if minutes else None


# --------------------------------------------------------------------------- backtest

# The policy knobs the backtest form offers as overrides; a blank field keeps the saved value.
# Labels are the console's; help texts, types and bounds come from the policy model, and the
# whole request is validated by the API's serializer and the policy's own clean().
BACKTEST_OVERRIDES: dict[str, str] = {
    "targets": "Targets",
    "tolerance": "Tolerance",
    "tolerance_abs_replicas": "Tolerance (replicas)",
    "scale_up_stabilization_s": "Scale-up stabilisation (s)",
    "scale_down_stabilization_s": "Scale-down stabilisation (s)",
    "scale_up_policies": "Scale-up rate limits",
    "scale_down_policies": "Scale-down rate limits",
    "cold_start_s": "Cold start (s)",
    "panic_enabled": "Panic mode",
    "slo_boost_enabled": "SLO boost",
    "slo_boost_burn_rate": "SLO boost burn rate",
}
BACKTEST_HOURS = (1, 3, 6, 12, 24)
_SWITCH = {"on": True, "off": False}
_SWITCH_CHOICES = [("on", "on"), ("off", "off")]
# What a browser's datetime-local input reads and writes; the form's times are UTC.
DATETIME_LOCAL = "%Y-%m-%dT%H:%M:%S"
_DATETIME_LOCAL = forms.DateTimeInput(
    attrs={"type": "datetime-local", "step": 1}, format=DATETIME_LOCAL
)


def _override_field(name: str, label: str) -> forms.Field:
    model_field = AutoscalingPolicy._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    if isinstance(model_field, models.BooleanField):
        return forms.ChoiceField(
            label=label,
            required=False,
            choices=[("", "as saved"), *_SWITCH_CHOICES],
            help_text=model_field.help_text,
        )
    field = model_field.formfield(label=label, required=False, initial=None)
    assert field is not None
    if isinstance(field, forms.JSONField):
        field = _BlankJSONField(
            label=label, required=False, help_text=field.help_text, widget=forms.Textarea
        )
        field.widget.attrs.update(rows=2, cols=40)
    return field


class _BlankJSONField(forms.JSONField):
    """A JSON override left blank shows blank again (not ``null``)."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class BacktestForm(forms.Form):
    """Which deployment, which range and which policy to replay. The request the API takes
    is assembled from it and validated by the API's own serializer (team scoping, range,
    step) and the policy by :func:`apps.autoscaling.backtest.backtest_policy`, so the console
    accepts exactly what the API accepts. When valid, ``request_data`` is the serializer's
    validated data and ``policy`` the engine policy to replay."""

    # Its queryset (the user's deployments) is set per form.
    deployment: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=Deployment.objects.none(), label="Deployment"
    )
    hours = forms.TypedChoiceField(
        label="Range",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[*((h, f"last {h} h") for h in BACKTEST_HOURS), ("", "from start to end")],
        initial=BACKTEST_HOURS[0],
        help_text="The last hours up to now, or the start and end below.",
    )
    start = forms.DateTimeField(
        label="Start (UTC)",
        required=False,
        widget=_DATETIME_LOCAL,
    )
    end = forms.DateTimeField(
        label="End (UTC)",
        required=False,
        widget=_DATETIME_LOCAL,
        help_text="Default now.",
    )
    step_s = forms.FloatField(
        label="Step (s)",
        required=False,
        help_text=str(BacktestRequestSerializer().fields["step_s"].help_text),
    )

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        deployment = self.fields["deployment"]
        assert isinstance(deployment, forms.ModelChoiceField)
        deployment.queryset = deployments_visible(user=request.user)
        for name, label in BACKTEST_OVERRIDES.items():
            self.fields[name] = _override_field(name, label)
        self.request_data: dict[str, Any] = {}
        self.policy: Any = None

    @property
    def override_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in BACKTEST_OVERRIDES]

    @property
    def range_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("deployment", "hours", "start", "end", "step_s")]

    def show_saved(self, policy: AutoscalingPolicy) -> None:
        """Show the saved policy's values in the blank override fields (what a blank keeps)."""
        for name in BACKTEST_OVERRIDES:
            field, value = self.fields[name], getattr(policy, name)
            if isinstance(field, forms.ChoiceField):
                field.choices = [("", f"as saved ({'on' if value else 'off'})"), *_SWITCH_CHOICES]
            else:
                text = json.dumps(value) if isinstance(value, list) else str(value)
                field.widget.attrs["placeholder"] = "" if value is None else text

    def overrides(self) -> dict[str, Any]:
        """The policy fields given (blank ones keep the saved policy's values)."""
        out = {}
        for name in BACKTEST_OVERRIDES:
            value = self.cleaned_data.get(name)
            if value in (None, ""):
                continue
            out[name] = _SWITCH.get(value, value) if isinstance(value, str) else value
        return out

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        hours, start, end = data.get("hours"), data.get("start"), data.get("end")
        if hours:
            end = timezone.now()
            start = end - timedelta(hours=hours)
        elif start is None:
            self.add_error("start", "Give a start, or choose one of the last hours.")
            return data
        body: dict[str, Any] = {"deployment": data["deployment"].pk, "start": start.isoformat()}
        if end is not None:
            body["end"] = end.isoformat()
        if data.get("step_s") is not None:
            body["step_s"] = data["step_s"]
        overrides = self.overrides()
        if overrides:
            body["policy"] = overrides
        serializer = BacktestRequestSerializer(data=body, context={"request": self.request})
        if not serializer.is_valid():
            self._add_api_errors(serializer.errors)
            return data
        self.request_data = dict(serializer.validated_data)
        try:
            self.policy = backtest_policy(
                deployment=self.request_data["deployment"],
                overrides=self.request_data.get("policy"),
            )
        except BacktestError as exc:
            self.add_error(None, f"Policy: {exc}")
        return data

    def _add_api_errors(self, errors: Any) -> None:
        """The serializer's errors on the form's fields (the policy's on its overrides)."""
        for key, messages in dict(errors).items():
            if key == "policy" and isinstance(messages, dict):
                self._add_api_errors(messages)
                continue
            field = key if key in self.fields else None
            for message in messages if isinstance(messages, list) else [messages]:
                self.add_error(field, str(message))


# =========================================================================== alerts page


class AlertFilterForm(TeamFilterForm):
    state = forms.ChoiceField(required=False, choices=_any(AlertStatus.choices))
    severity = forms.ChoiceField(required=False, choices=_any(Severity.choices))
    deployment = forms.ChoiceField(required=False)

    lookups = {
        **TeamFilterForm.lookups,
        "state": "status",
        "severity": "severity",
        "deployment": "deployment_id",
    }

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {
            **super().scoped_choices(user),
            "deployment": deployments_visible(user=user).values_list("pk", "name"),
        }


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(
        max_length=500, required=False, strip=True, help_text="Optional note."
    )


MATCHER_OPS = [("=", "="), ("!=", "!="), ("=~", "=~ (regex)"), ("!~", "!~ (regex)")]


class MatcherForm(forms.Form):
    """One label matcher of a silence; an added row left blank is ignored."""

    name = forms.CharField(max_length=100)
    op = forms.ChoiceField(choices=MATCHER_OPS, initial="=")
    value = forms.CharField(max_length=1000, required=False, strip=False)


MatcherFormSet = forms.formset_factory(MatcherForm, extra=1, can_delete=True, max_num=50)

SILENCE_DURATIONS: dict[str, tuple[str, timedelta]] = {
    "30m": ("30 minutes", timedelta(minutes=30)),
    "1h": ("1 hour", timedelta(hours=1)),
    "2h": ("2 hours", timedelta(hours=2)),
    "4h": ("4 hours", timedelta(hours=4)),
    "12h": ("12 hours", timedelta(hours=12)),
    "1d": ("1 day", timedelta(days=1)),
    "3d": ("3 days", timedelta(days=3)),
    "7d": ("7 days", timedelta(days=7)),
}


class SilenceForm(forms.Form):
    """A silence from an alert's labels: its matchers (a formset pre-filled with the labels,
    each editable and removable), how long, and why."""

    duration = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in SILENCE_DURATIONS.items()], initial="2h"
    )
    comment = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why (required)."
    )

    def __init__(self, data: Any = None, *, labels: Mapping[str, str]) -> None:
        super().__init__(data)
        self.matchers = MatcherFormSet(
            data,
            prefix="m",
            initial=[{"name": k, "op": "=", "value": v} for k, v in sorted(labels.items())],
        )
        self.matcher_errors: list[str] = []

    def length(self) -> timedelta:
        key = self.data.get("duration") if self.is_bound else None
        return SILENCE_DURATIONS.get(key or "", SILENCE_DURATIONS["2h"])[1]

    def cleaned_matchers(self) -> list[dict[str, str]] | None:
        """The matchers as the silence would store them, checked as ``Silence.clean`` checks
        them (RE2 patterns, not all matching the empty string); ``None`` when they are not
        valid, with the reasons in ``matcher_errors``."""
        if not self.is_bound:
            raw = [dict(row) for row in self.matchers.initial or ()]
        elif not self.matchers.is_valid():
            self.matcher_errors = [
                f"matcher {i}, {field}: {' '.join(str(e) for e in errors)}"
                for i, form in enumerate(self.matchers.forms, 1)
                if not form.cleaned_data.get("DELETE")
                for field, errors in form.errors.items()
            ] + [str(e) for e in self.matchers.non_form_errors()]
            return None
        else:
            raw = [
                {"name": f.cleaned_data["name"], "op": f.cleaned_data["op"],
                 "value": f.cleaned_data["value"]}
                for f in self.matchers.forms
                if f.cleaned_data.get("name") and not f.cleaned_data.get("DELETE")
            ]  # fmt: skip
        try:
            return silence_matchers_clean(raw)
        except ValidationError as exc:
            self.matcher_errors = exc.messages
            return None

    def add_service_errors(self, exc: ValidationError) -> None:
        """The service's field errors on this form (matchers and times as form-wide)."""
        for name, errors in exc.message_dict.items():
            self.add_error(name if name in self.fields else None, errors)


# --------------------------------------------------------------------------- logs

# The Logs page's relative ranges (up to now); a start (and end) replace them.
LOG_RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
}
DEFAULT_LOG_RANGE = "1h"
LOG_CONTEXT_LINES = 10
_NS = 1_000_000_000


def _ns(moment: Any) -> int:
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


class LogTeamForm(forms.Form):
    """The team whose logs a form reads: one of the user's (choices, then checked by the
    REST API's own rule, :func:`apps.logs.params.request_team_id`); blank means the user's
    first team."""

    team = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        field = self.fields["team"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            (str(pk), slug)
            for pk, slug in teams_visible_to(user=user).order_by("slug").values_list("pk", "slug")
        ]

    def clean_team(self) -> int:
        choices = self.fields["team"].choices  # type: ignore[attr-defined]
        requested = self.cleaned_data.get("team") or (str(choices[0][0]) if choices else None)
        try:
            return request_team_id(user=self.user, requested=requested)
        except APIException as exc:
            detail = exc.detail
            if isinstance(detail, dict):
                raise ValidationError(
                    [str(m) for errors in detail.values() for m in errors]
                ) from None
            raise ValidationError(str(detail)) from None


class LogSearchForm(LogTeamForm):
    """The Logs page: a LogQL query over a range. A GET form, so the page's address is
    the link to its result; times are UTC, as a datetime-local input sends them."""

    query = forms.CharField(
        label="LogQL query",
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80, "spellcheck": "false"}),
        help_text='A log query such as {app="api"} |= "error", or a metric query such as '
        'sum by (level) (count_over_time({app="api"} [5m])).',
    )
    since = forms.ChoiceField(
        label="Range",
        required=False,
        choices=[(key, f"last {key}") for key in LOG_RANGES],
        initial=DEFAULT_LOG_RANGE,
    )
    start = forms.DateTimeField(
        label="From (UTC)", required=False, widget=_DATETIME_LOCAL, help_text="Replaces the range."
    )
    end = forms.DateTimeField(
        label="Until (UTC)", required=False, widget=_DATETIME_LOCAL, help_text="Default: now."
    )
    limit = forms.IntegerField(
        label="Lines",
        required=False,
        min_value=1,
        initial=100,
        widget=forms.NumberInput(attrs={"placeholder": "100"}),
    )
    direction = forms.ChoiceField(
        label="Order",
        required=False,
        choices=[("backward", "newest first"), ("forward", "oldest first")],
        initial="backward",
    )

    field_order = ["query", "team", "since", "start", "end", "limit", "direction"]

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        limit = self.fields["limit"]
        assert isinstance(limit, forms.IntegerField)
        limit.max_value = int(settings.LOGS_QUERY_MAX_LIMIT)
        limit.validators.append(MaxValueValidator(limit.max_value))
        limit.widget.attrs["max"] = limit.max_value

    def clean_query(self) -> Any:
        """The parsed query; invalid LogQL is this field's error, naming the position."""
        text = self.cleaned_data["query"]
        try:
            return parse_query(text)
        except LogQLError as exc:
            raise ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        now = timezone.now()
        if start is None:
            end = end or now
            start = end - LOG_RANGES[data.get("since") or DEFAULT_LOG_RANGE]
        end = end or now
        if end <= start:
            self.add_error("end", "The end must be after the start.")
        data.update(
            start_ns=_ns(start),
            end_ns=_ns(end),
            limit=data.get("limit") or 100,
            direction=data.get("direction") or "backward",
        )
        return data


class LogContextForm(LogTeamForm):
    """One entry of the team's logs (its stream, timestamp and line hash, as a search
    row names it) and how many lines of its stream to show either side."""

    stream = forms.CharField(max_length=64)
    timestamp = forms.IntegerField(min_value=0)
    line_hash = forms.CharField(max_length=64)
    lines = forms.IntegerField(
        required=False, min_value=1, max_value=100, initial=LOG_CONTEXT_LINES
    )


# --------------------------------------------------------------------------- capacity sizing

# The v2 demand sizing knobs of a saved policy (docs/autoscaling.md "Sizing from demand and
# capacity"). Labels are the console's; help texts, types and blank-ness come from the policy
# model, the bounds below are the engine's, and the policy's own clean() checks the whole.
CAPACITY_FIELDS: dict[str, tuple[str, float | None, float | None, bool]] = {
    # name: (label, lowest, highest, lowest excluded)
    "capacity_initial_per_replica": ("Initial capacity per replica", 0.0, None, True),
    "capacity_backlog_signal": ("Backlog signal", None, None, False),
    "capacity_backlog_drain_s": ("Backlog drain time (s)", 1.0, 86400.0, False),
    "capacity_latency_signal": ("Latency signal", None, None, False),
    "capacity_latency_slo_s": ("Latency SLO (s)", 0.0, 3600.0, True),
    "capacity_learn_rate": ("Learning rate", 0.0, 1.0, True),
    "capacity_learn_min_utilization": ("Busy above (share of capacity)", 0.0, 1.0, False),
    "capacity_learn_range": ("Learning range (times or divided by)", 1.0, 100.0, False),
    "capacity_peak_window_s": ("Peak window (s)", 0.0, 86400.0, False),
    "capacity_pool_size": ("Measured with replicas", 1.0, None, False),
    "capacity_pooling": ("Pooling", 0.0, engine.MAX_POOLING, False),
}


def _forecast_periods(text: str) -> list[float]:
    try:
        periods = [float(p) for p in text.replace(",", " ").split()]
    except ValueError:
        raise ValidationError(
            "Give periods in seconds separated by commas, e.g. 86400, 604800."
        ) from None
    if any(not 3600 <= p <= 31 * 86400 for p in periods):
        raise ValidationError("Each period must be between 3600 s (an hour) and 31 days.")
    return periods


class CapacityPolicyForm(ReasonForm):
    """Edit the demand sizing (``capacity_*``) fields of a deployment's saved policy."""

    prefix = "capacity"  # its ids stay apart from the page's other forms
    capacity_forecast_periods_s = forms.CharField(
        label="Forecast periods (s)",
        required=False,
        help_text="Seasonal periods in seconds for the forecast floor, e.g. 86400 (daily) "
        "or 86400, 604800; empty: no forecast.",
    )

    def __init__(self, *args: Any, policy: AutoscalingPolicy, **kwargs: Any) -> None:
        initial = {name: getattr(policy, name) for name in CAPACITY_FIELDS}
        initial["capacity_forecast_periods_s"] = ", ".join(
            f"{p:g}" for p in policy.capacity_forecast_periods_s
        )
        super().__init__(*args, **{**kwargs, "initial": initial})
        self.policy = policy
        for name, (label, low, high, _) in CAPACITY_FIELDS.items():
            model_field = AutoscalingPolicy._meta.get_field(name)
            assert isinstance(model_field, models.Field)
            field = model_field.formfield(label=label)
            assert field is not None
            field.required = not (model_field.null or model_field.blank)
            if isinstance(field, forms.FloatField):
                field.widget.attrs["step"] = "any"
                if low is not None:
                    field.widget.attrs["min"] = f"{low:g}"
                if high is not None:
                    field.widget.attrs["max"] = f"{high:g}"
            self.fields[name] = field
        self.order_fields([*CAPACITY_FIELDS, "capacity_forecast_periods_s", "reason"])

    def clean_capacity_forecast_periods_s(self) -> list[float]:
        return _forecast_periods(self.cleaned_data.get("capacity_forecast_periods_s") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name, (_, low, high, strict) in CAPACITY_FIELDS.items():
            value = data.get(name)
            if not isinstance(value, float):
                continue
            if low is not None and (value <= low if strict else value < low):
                self.add_error(name, f"Must be {'greater than' if strict else 'at least'} {low:g}.")
            elif high is not None and value > high:
                self.add_error(name, f"Must be at most {high:g}.")
        if self.errors:
            return data
        changed = AutoscalingPolicy.objects.get(pk=self.policy.pk)
        for name in [*CAPACITY_FIELDS, "capacity_forecast_periods_s"]:
            setattr(changed, name, data.get(name))
        try:
            changed.clean()
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                self.add_error(key if key in self.fields else None, errors)
        return data

    def changed_policy(self) -> dict[str, Any]:
        """The fields to save."""
        return {
            name: self.cleaned_data[name]
            for name in [*CAPACITY_FIELDS, "capacity_forecast_periods_s"]
        }
