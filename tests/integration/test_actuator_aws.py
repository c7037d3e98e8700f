"""The Auto Scaling group actuator with boto3 against moto in server mode.

moto runs as a real HTTP server on 127.0.0.1 and boto3 talks to it over the wire, so
request signing, the query protocol, parsing and our error mapping are all real. Two
things moto cannot do are covered differently: it never throttles (a stub endpoint
answering AWS's Throttling error document stands in, plus the mapping function fed a
constructed ClientError), and it accepts a desired capacity outside the group's bounds
where AWS answers ValidationError, which makes the clamping visible in its state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from apps.autoscaling.actuators import ActuatorError, ScaleStatus, ScaleTarget, apply_with_retry
from apps.autoscaling.actuators.aws_asg import AutoScalingGroupActuator, actuator_error_from_aws
from apps.integrations.aws import (
    AutoScalingClient,
    AwsError,
    aws_error_from_exception,
    build_autoscaling_client,
    build_session,
)
from tests.integration.moto_support import moto_reset_with_group

REGION = "us-east-1"
GROUP = ScaleTarget("aws-asg", "", "gpu-pool")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, and no developer ~/.aws files leaking in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)


@pytest.fixture
def moto(moto_url: str) -> str:
    """The moto server with empty state, plus a launch template and a 1..5 group at 2."""
    moto_reset_with_group(moto_url, region=REGION, group=GROUP.name, template="vllm-gpu")
    return moto_url


@pytest.fixture
def boto_client(moto: str) -> Any:
    return build_autoscaling_client(
        region=REGION, endpoint_url=moto, connect_timeout_s=2, read_timeout_s=5
    )


@pytest.fixture
def actuator(boto_client: Any) -> AutoScalingGroupActuator:
    return AutoScalingGroupActuator(AutoScalingClient(boto_client))


def record_calls(boto_client: Any) -> list[str]:
    """Operation names the real client sends, from botocore's own event hooks."""
    calls: list[str] = []
    boto_client.meta.events.register(
        "before-call.auto-scaling.*",
        lambda model, **_: calls.append(model.name),
    )
    return calls


def desired_in_moto(moto_url: str) -> int:
    client = boto3.client("autoscaling", region_name=REGION, endpoint_url=moto_url)
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP.name])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


# ------------------------------------------------------------------- actuator


def test_get_scale__group_1_to_5_at_2__desired_bounds_and_in_service(
    actuator: AutoScalingGroupActuator,
) -> None:
    status = actuator.get_scale(GROUP)

    assert status == ScaleStatus(spec_replicas=2, ready_replicas=2, min_size=1, max_size=5)


def test_apply_with_retry__within_bounds__desired_capacity_set(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto: str
) -> None:
    calls = record_calls(boto_client)

    status = apply_with_retry(actuator, GROUP, 4, idempotency_key="d-1")

    assert status.spec_replicas == 4
    assert status.warnings == ()
    assert desired_in_moto(moto) == 4
    assert calls.count("SetDesiredCapacity") == 1
    assert actuator.get_scale(GROUP).ready_replicas == 4


def test_apply_with_retry__above_max__clamped_to_max_with_warning(
    actuator: AutoScalingGroupActuator, moto: str
) -> None:
    status = apply_with_retry(actuator, GROUP, 9, idempotency_key="d-1")

    assert status.spec_replicas == 5
    assert status.warnings == (
        "requested 9 instances but Auto Scaling group gpu-pool allows 1..5; set 5",
    )
    assert desired_in_moto(moto) == 5


def test_apply_with_retry__below_min__clamped_to_min_with_warning(
    actuator: AutoScalingGroupActuator, moto: str
) -> None:
    status = apply_with_retry(actuator, GROUP, 0, idempotency_key="d-1")

    assert status.spec_replicas == 1
    assert "allows 1..5; set 1" in status.warnings[0]
    assert desired_in_moto(moto) == 1


def test_apply_with_retry__already_at_clamped_max__no_write(
    actuator: AutoScalingGroupActuator, boto_client: Any
) -> None:
    apply_with_retry(actuator, GROUP, 5, idempotency_key="d-1")
    calls = record_calls(boto_client)

    status = apply_with_retry(actuator, GROUP, 7, idempotency_key="d-2")

    assert status.spec_replicas == 5
    assert status.warnings
    assert "SetDesiredCapacity" not in calls


def test_apply_with_retry__already_at_target__no_write(
    actuator: AutoScalingGroupActuator, boto_client: Any
) -> None:
    calls = record_calls(boto_client)

    status = apply_with_retry(actuator, GROUP, 2, idempotency_key="d-1")

    assert status.spec_replicas == 2
    assert calls == ["DescribeAutoScalingGroups"]


def test_apply_with_retry__unknown_group__permanent_at_once(
    actuator: AutoScalingGroupActuator, boto_client: Any
) -> None:
    calls = record_calls(boto_client)

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, ScaleTarget("aws-asg", "", "ghost"), 2, idempotency_key="k")

    assert info.value.permanent_reason == "not-found"
    assert "no Auto Scaling group named 'ghost'" in str(info.value)
    assert calls == ["DescribeAutoScalingGroups"]


def _group_instances(moto_url: str) -> dict[str, str]:
    client = boto3.client("autoscaling", region_name=REGION, endpoint_url=moto_url)
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP.name])
    return {
        i["InstanceId"]: i["LifecycleState"] for i in group["AutoScalingGroups"][0]["Instances"]
    }


def test_set_replicas__remove_named__that_instance_terminated_desired_decremented(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto: str
) -> None:
    apply_with_retry(actuator, GROUP, 3, idempotency_key="d-0")
    chosen, *kept = sorted(_group_instances(moto))
    calls = record_calls(boto_client)

    status = actuator.set_replicas(GROUP, 2, idempotency_key="d-1", remove=[chosen])

    assert status.spec_replicas == 2
    assert desired_in_moto(moto) == 2
    assert "SetDesiredCapacity" not in calls
    assert calls.count("TerminateInstanceInAutoScalingGroup") == 1
    left = _group_instances(moto)
    assert left.get(chosen, "gone") != "InService"
    assert all(left[i] == "InService" for i in kept)


def test_set_replicas__remove_one_of_two_removed__named_then_desired_capacity(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto: str
) -> None:
    apply_with_retry(actuator, GROUP, 4, idempotency_key="d-0")
    chosen = sorted(_group_instances(moto))[-1]
    calls = record_calls(boto_client)

    actuator.set_replicas(GROUP, 2, idempotency_key="d-1", remove=[chosen])

    assert desired_in_moto(moto) == 2
    assert calls.count("TerminateInstanceInAutoScalingGroup") == 1
    assert calls.count("SetDesiredCapacity") == 1
    assert _group_instances(moto).get(chosen, "gone") != "InService"


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("unknown", "not in service"),
        ("both", "removes 1"),
        ("twice", "more than once"),
    ],
)
def test_set_replicas__remove_it_cannot_honour__permanent_invalid_and_no_write(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto: str, remove: str, message: str
) -> None:
    instances = sorted(_group_instances(moto))
    named = {
        "unknown": ["i-0123456789abcdef0"],
        "both": instances,
        "twice": [instances[0], instances[0]],
    }[remove]
    calls = record_calls(boto_client)

    with pytest.raises(ActuatorError) as info:
        actuator.set_replicas(GROUP, 1, idempotency_key="d-1", remove=named)

    assert (info.value.retryable, info.value.permanent_reason) == (False, "invalid")
    assert message in info.value.message
    assert set(calls) == {"DescribeAutoScalingGroups"}
    assert desired_in_moto(moto) == 2


def test_get_scale__wrong_target_kind__permanent(actuator: AutoScalingGroupActuator) -> None:
    with pytest.raises(ActuatorError) as info:
        actuator.get_scale(ScaleTarget("k8s-deployment", "llm", "chat"))

    assert info.value.permanent_reason == "unsupported-target"


# ------------------------------------------------------------- credentials


def test_build_session__assume_role__temporary_credentials_from_sts(moto: str) -> None:
    session = build_session(
        region=REGION,
        credentials_source="assume-role",
        role_arn="arn:aws:iam::123456789012:role/llm-scaler",
        sts_endpoint_url=moto,
    )

    credentials = session.get_credentials().get_frozen_credentials()

    # moto's AssumeRole hands out ASIA... keys, unlike the "testing" source keys.
    assert credentials.access_key.startswith("ASIA")
    client = session.client("autoscaling", endpoint_url=moto)
    actuator = AutoScalingGroupActuator(AutoScalingClient(client))
    assert actuator.get_scale(GROUP).spec_replicas == 2


def test_build_session__profile__named_profile_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text(
        "[scaler]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))

    session = build_session(region=REGION, credentials_source="profile", profile="scaler")

    assert session.get_credentials().access_key == "AKIAPROFILE"


def test_build_session__unknown_profile__permanent_error() -> None:
    with pytest.raises(AwsError) as info:
        build_session(region=REGION, credentials_source="profile", profile="missing")

    assert not info.value.retryable
    assert info.value.code == "NoCredentials"


def test_build_session__environment_without_keys__permanent_error() -> None:
    with pytest.raises(AwsError) as info:
        build_session(region=REGION, credentials_source="environment", environ={})

    assert not info.value.retryable
    assert "AWS_ACCESS_KEY_ID" in str(info.value)


def test_build_autoscaling_client__config__explicit_timeouts_and_one_attempt() -> None:
    client = build_autoscaling_client(region=REGION, connect_timeout_s=3, read_timeout_s=7)

    assert client.meta.config.connect_timeout == 3
    assert client.meta.config.read_timeout == 7
    assert client.meta.config.retries["total_max_attempts"] == 1


# --------------------------------------------------- throttling and error mapping


THROTTLING_BODY = (
    b'<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
    b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
    b"</Error><RequestId>7e0f5c2a-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
)


@pytest.fixture
def throttling_endpoint() -> Iterator[tuple[str, list[str]]]:
    """An endpoint answering every request with AWS's Throttling error document."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            seen.append(body)
            self.send_response(400)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(THROTTLING_BODY)))
            self.end_headers()
            self.wfile.write(THROTTLING_BODY)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_apply_with_retry__throttled__retryable_and_only_our_retries(
    throttling_endpoint: tuple[str, list[str]],
) -> None:
    url, seen = throttling_endpoint
    client = build_autoscaling_client(region=REGION, endpoint_url=url)
    actuator = AutoScalingGroupActuator(AutoScalingClient(client))
    sleeps: list[float] = []

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(
            actuator,
            GROUP,
            3,
            idempotency_key="k",
            attempts=3,
            base_delay_s=0.001,
            sleep=sleeps.append,
        )

    assert info.value.retryable
    assert "throttling" in str(info.value)
    assert "Rate exceeded" in str(info.value)
    # botocore would retry Throttling on its own; with one SDK attempt each of our three
    # attempts is exactly one request.
    assert len(seen) == 3
    assert all("Action=DescribeAutoScalingGroups" in b for b in seen)
    assert len(sleeps) == 2


@pytest.mark.parametrize("code", ["Throttling", "RequestLimitExceeded"])
def test_aws_error_from_exception__throttling_codes__retryable_with_clear_message(
    code: str,
) -> None:
    exc = ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "SetDesiredCapacity")

    error = aws_error_from_exception(exc, "set desired capacity")
    actuator_error = actuator_error_from_aws(exc)

    assert error.retryable
    assert error.code == code
    assert str(error) == (
        f"set desired capacity: AWS is throttling requests ({code}: Rate exceeded); "
        "retry later with backoff"
    )
    assert actuator_error.retryable
    assert not actuator_error.conflict


def test_aws_error_from_exception__validation_error__permanent_with_aws_message() -> None:
    message = "New SetDesiredCapacity value 9 is above max value 5 for the AutoScalingGroup."
    exc = ClientError(
        {"Error": {"Code": "ValidationError", "Message": message}}, "SetDesiredCapacity"
    )

    error = actuator_error_from_aws(exc)

    assert error.permanent
    assert error.permanent_reason == "invalid"
    assert message in str(error)


def test_aws_error_from_exception__access_denied__permanent_forbidden() -> None:
    exc = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "SetDesiredCapacity"
    )

    error = actuator_error_from_aws(exc)

    assert error.permanent
    assert error.permanent_reason == "forbidden"
    assert "IAM policy" in str(error)


def test_aws_error_from_exception__server_error_status__retryable() -> None:
    exc = ClientError(
        {
            "Error": {"Code": "InternalFailure", "Message": "oops"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "DescribeAutoScalingGroups",
    )

    assert aws_error_from_exception(exc).retryable


def test_set_replicas__remove_names_a_standby_instance__permanent_invalid(
    actuator: AutoScalingGroupActuator, moto: str
) -> None:
    apply_with_retry(actuator, GROUP, 3, idempotency_key="d-0")
    standby = sorted(_group_instances(moto))[0]
    boto3.client("autoscaling", region_name=REGION, endpoint_url=moto).enter_standby(
        AutoScalingGroupName=GROUP.name, InstanceIds=[standby], ShouldDecrementDesiredCapacity=True
    )

    with pytest.raises(ActuatorError) as info:
        actuator.set_replicas(GROUP, 1, idempotency_key="d-1", remove=[standby])

    assert "not in service" in info.value.message
    assert desired_in_moto(moto) == 2
