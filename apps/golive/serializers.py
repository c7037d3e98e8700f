"""Request and response shapes of the go-live API: the checklist with its evidence, the
stage and the gate, overrides, artifact reports and load tests."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from . import checks
from .models import (
    ArtifactReport,
    CheckResult,
    GateOverride,
    GateTarget,
    LoadTestMode,
    LoadTestRun,
    Stage,
)


class CheckResultSerializer(serializers.ModelSerializer[CheckResult]):
    title = serializers.SerializerMethodField(help_text="What the check verifies.")

    class Meta:
        model = CheckResult
        fields = [
            "id",
            "key",
            "title",
            "group",
            "status",
            "required",
            "observed",
            "message",
            "evidence_url",
            "checked_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Result id."}}

    def get_title(self, obj: CheckResult) -> str:
        spec = checks.CHECKS_BY_KEY.get(obj.key)
        return spec.title if spec else obj.key


class FailingCheckSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Check key.")
    status = serializers.CharField(help_text="Its latest status: fail or unknown.")


class GateSerializer(serializers.Serializer):
    open = serializers.BooleanField(help_text="Every required check passes.")
    failing = FailingCheckSerializer(many=True, help_text="Required checks not passing.")


class OverrideSerializer(serializers.ModelSerializer[GateOverride]):
    actor = serializers.SerializerMethodField(help_text="Who overrode ('system': the seed).")

    class Meta:
        model = GateOverride
        fields = ["id", "target", "reason", "failing_checks", "actor", "created_at"]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Override id."}}

    def get_actor(self, obj: GateOverride) -> str:
        return obj.actor.get_username() if obj.actor is not None else "system"


class ChecklistSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(help_text="Deployment id.")
    name = serializers.CharField(help_text="Deployment name.")
    status = serializers.CharField(help_text="The deployment's lifecycle status.")
    stage = serializers.ChoiceField(
        choices=Stage.choices, help_text="preparation, validation, production or operations."
    )
    require_tls = serializers.BooleanField(help_text="The endpoint must be https.")
    gate = GateSerializer(help_text="Whether the gate to production is open.")
    checks = CheckResultSerializer(
        many=True, help_text="The latest result of each check (checks never run are absent)."
    )
    overrides = OverrideSerializer(many=True, help_text="The latest overrides of the gate.")
    measured_capacity_rps_per_replica = serializers.FloatField(
        allow_null=True,
        help_text="Capacity per replica of the latest stress test that measured one.",
    )
    policy_capacity_rps_per_replica = serializers.FloatField(
        allow_null=True,
        help_text="The scaling policy's capacity_initial_per_replica (null: none or no policy).",
    )


class StageSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(
        choices=Stage.choices,
        help_text="Where to move it; production (and operations) make it active and need "
        "every required check to pass.",
    )
    require_tls = serializers.BooleanField(
        required=False, help_text="Whether the endpoint must be https (the TLS check)."
    )


class OverrideRequestSerializer(serializers.Serializer):
    target = serializers.ChoiceField(
        choices=GateTarget.choices,
        help_text="production: make it active; enforce: put its scaling policy in enforce.",
    )
    reason = serializers.CharField(
        max_length=2000, help_text="Why the failing checks may be ignored (required, audited)."
    )


class ApplyCapacityRequestSerializer(serializers.Serializer):
    pooling_with = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Another stress test of the deployment, at a different replica count: "
        "the policy's capacity_pooling is fitted to the two.",
    )


class GateRefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why, naming the required checks not passing.")
    failing_checks = FailingCheckSerializer(many=True, help_text="Those checks.")


class ArtifactFileSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=1000, help_text="File path, as the pipeline sees it.")
    sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$", help_text="The file's sha256 (64 lowercase hex digits)."
    )


class ArtifactReportSerializer(serializers.ModelSerializer[ArtifactReport]):
    files = serializers.ListField(
        child=ArtifactFileSerializer(),
        required=False,
        max_length=10_000,
        help_text="The files and their sha256.",
    )
    digest = serializers.RegexField(
        r"^sha256:[0-9a-f]{64}$",
        required=False,
        allow_blank=True,
        help_text="Overall digest, sha256:<hex>; without it the digest of the file list "
        "(sha256 of its sha256sum listing) is compared with the model's checksum.",
    )

    class Meta:
        model = ArtifactReport
        fields = ["id", "files", "digest", "reported_at"]
        read_only_fields = ["id", "reported_at"]
        extra_kwargs = {"id": {"help_text": "Report id."}}


class LoadTestRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=LoadTestMode.choices,
        help_text="functional (well-formed answers, streaming, errors), performance (the "
        "target rate against the SLOs) or stress (rate stepped up until the SLO breaks).",
    )
    rate_rps = serializers.FloatField(
        min_value=0.01, default=1.0, help_text="Request rate (the first step for stress)."
    )
    duration_s = serializers.FloatField(
        min_value=1.0, default=30.0, help_text="Seconds at each rate."
    )
    max_rate_rps = serializers.FloatField(
        min_value=0.01, required=False, help_text="Stress: highest rate tried."
    )
    rate_factor = serializers.FloatField(
        min_value=1.01, max_value=10.0, default=1.5, help_text="Stress: next rate = rate x this."
    )
    max_total_s = serializers.FloatField(
        min_value=1.0, required=False, help_text="The whole run stops after this many seconds."
    )
    max_concurrency = serializers.IntegerField(
        min_value=1, max_value=10_000, default=256, help_text="Requests in flight at most."
    )
    slo_ttft_s = serializers.FloatField(
        min_value=0.001,
        required=False,
        help_text="TTFT objective; default the deployment's TTFT SLO threshold, else 2 s.",
    )
    slo_itl_s = serializers.FloatField(
        min_value=0.0001, default=0.1, help_text="Inter-token latency objective (s)."
    )
    slo_quantile = serializers.FloatField(
        min_value=0.5, max_value=0.999, default=0.95, help_text="Quantile the SLOs apply to."
    )
    max_error_rate = serializers.FloatField(
        min_value=0.0, max_value=1.0, default=0.01, help_text="Errors allowed (fraction)."
    )
    replicas = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Replicas serving during the test (capacity per replica divides by it); "
        "default the ready replicas of the latest decision.",
    )
    stream = serializers.BooleanField(default=True, help_text="Stream the answers (SSE).")
    api = serializers.ChoiceField(
        choices=["chat", "completions"], default="chat", help_text="Which OpenAI API to call."
    )
    workload_preset = serializers.CharField(
        max_length=32, default="chat", help_text="Prompt/output length mix preset of the engine."
    )
    max_prompt_tokens = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="Cap on prompt tokens."
    )
    request_timeout_s = serializers.FloatField(
        min_value=1.0, max_value=600.0, default=120.0, help_text="Per-request timeout."
    )
    seed = serializers.IntegerField(min_value=0, default=0, help_text="Workload seed.")
    confirm_production = serializers.BooleanField(
        default=False,
        help_text="Required (true) to load-test an active production deployment.",
    )


class LoadTestRunSerializer(serializers.ModelSerializer[LoadTestRun]):
    created_by = serializers.SerializerMethodField(help_text="Who asked for it.")

    class Meta:
        model = LoadTestRun
        fields = [
            "id",
            "deployment",
            "mode",
            "status",
            "passed",
            "capacity_rps_per_replica",
            "plan",
            "progress",
            "result",
            "error",
            "confirmed_production",
            "cancel_requested",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Run id."}, "deployment": {"help_text": "Target."}}

    def get_created_by(self, obj: LoadTestRun) -> str | None:
        return obj.created_by.get_username() if obj.created_by is not None else None


def loadtest_params(data: dict[str, Any]) -> dict[str, Any]:
    """The validated request without the confirmation flag: what the plan is built from."""
    return {k: v for k, v in data.items() if k != "confirm_production" and v is not None}
