"""A thin typed wrapper around boto3's EC2 Auto Scaling and EC2 clients.

:func:`build_autoscaling_client` makes the boto3 client from a Cluster's fields (region and
where the credentials come from: a team's access key, a role assumed with it, or the
process's own identity); :func:`build_session` plus :func:`session_client` make several
clients sharing one set of credentials. :class:`AutoScalingClient` wraps the calls the
autoscaler and the balancing membership need (a group's capacity and its instances),
:class:`Ec2Client` the instances' private addresses. Every call is bounded by botocore's
connect and read timeouts, and botocore's own retries are off (one attempt in total): the
caller's retry policy is the only one, so a throttled call is not silently repeated behind
its back.

Every failure surfaces as :class:`AwsError`; ``retryable`` says whether the same call can
succeed later (throttling, 5xx, timeouts) or not (validation, access denied, no such
group, missing credentials).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import boto3
import botocore.exceptions
import botocore.parsers
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

CredentialsSource = Literal["access-key", "default-chain", "profile", "assume-role", "environment"]


@dataclass(frozen=True, slots=True)
class AccessKey:
    """Long-term or temporary credentials handed over by a team (never the process's)."""

    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        # Never print the secret, e.g. in a traceback's locals.
        return f"AccessKey(access_key_id={self.access_key_id!r}, secret_access_key=***)"


T = TypeVar("T")

# Error codes AWS uses for rate limiting across services and SDK generations.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
# Transient states of the service or of the group itself.
TRANSIENT_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ScalingActivityInProgress",
        "ResourceContention",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "OptInRequired",
    }
)


class AwsError(Exception):
    """A failed AWS call. ``code`` is AWS's error code, or ours for client-side failures
    (``NotFound``, ``Timeout``, ``Unreachable``, ``NoCredentials``, ``Misconfigured``)."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


def aws_error_from_exception(exc: Exception, action: str = "AWS call") -> AwsError:
    """Map a botocore exception (or a ClientError answer) to :class:`AwsError`."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        http_status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES:
            return AwsError(
                f"{action}: AWS is throttling requests ({code}: {message}); retry later "
                "with backoff",
                retryable=True,
                code=code,
            )
        if code in TRANSIENT_CODES or http_status >= 500:
            return AwsError(
                f"{action}: transient AWS failure ({code or http_status}: {message}); retry later",
                retryable=True,
                code=code,
            )
        if code in AUTH_CODES:
            return AwsError(
                f"{action}: AWS denied access ({code}): {message}; check the IAM policy "
                "and the credentials source",
                retryable=False,
                code=code,
            )
        if code == "ValidationError":
            return AwsError(f"{action}: rejected by AWS: {message}", retryable=False, code=code)
        return AwsError(
            f"{action}: AWS error {code or http_status}: {message}", retryable=False, code=code
        )
    if isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    ):
        return AwsError(
            f"{action}: AWS did not answer in time: {exc}", retryable=True, code="Timeout"
        )
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError,
    ):
        return AwsError(f"{action}: AWS unreachable: {exc}", retryable=True, code="Unreachable")
    if isinstance(exc, botocore.parsers.ResponseParserError):
        # An answer that is not AWS's XML/JSON: a proxy or load balancer error page.
        return AwsError(
            f"{action}: unparseable answer from AWS: {str(exc)[:200]}",
            retryable=True,
            code="BadResponse",
        )
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.CredentialRetrievalError
        | botocore.exceptions.ProfileNotFound,
    ):
        return AwsError(
            f"{action}: no usable AWS credentials: {exc}", retryable=False, code="NoCredentials"
        )
    if isinstance(
        exc, botocore.exceptions.NoRegionError | botocore.exceptions.ParamValidationError
    ):
        return AwsError(f"{action}: {exc}", retryable=False, code="Misconfigured")
    return AwsError(f"{action}: {exc}", retryable=False, code=type(exc).__name__)


def _client_config(region: str, connect_timeout_s: float, read_timeout_s: float) -> Config:
    # "max_attempts" in botocore counts retries *after* the first try; 1 would still
    # retry once. total_max_attempts=1 is the single attempt we want.
    return Config(
        region_name=region,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


def build_session(
    *,
    region: str,
    credentials_source: CredentialsSource = "default-chain",
    profile: str = "",
    role_arn: str = "",
    access_key: AccessKey | None = None,
    role_session_name: str = "llm-controlplane",
    sts_endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 10.0,
    environ: Mapping[str, str] | None = None,
) -> boto3.Session:
    """A boto3 session for ``region`` with credentials from ``credentials_source``.

    ``access-key`` uses ``access_key`` and nothing else. ``assume-role`` assumes
    ``role_arn`` through STS with ``access_key`` as the source credentials (or, without one,
    the default chain's) and refreshes the temporary credentials before they expire.

    The others act as the process itself: ``default-chain`` is boto3's usual chain (env,
    shared files, SSO, container and instance roles); ``profile`` a named profile of the
    process's shared files; ``environment`` only the
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` variables.
    """
    if not region:
        raise AwsError("an AWS region is required", retryable=False, code="Misconfigured")
    try:
        if credentials_source == "access-key":
            if access_key is None or not access_key.access_key_id:
                raise AwsError(
                    "credentials source 'access-key' needs an access key id and secret",
                    retryable=False,
                    code="NoCredentials",
                )
            return boto3.Session(
                region_name=region,
                aws_access_key_id=access_key.access_key_id,
                aws_secret_access_key=access_key.secret_access_key,
                aws_session_token=access_key.session_token or None,
            )
        if credentials_source == "default-chain":
            return boto3.Session(region_name=region)
        if credentials_source == "profile":
            if not profile:
                raise AwsError(
                    "credentials source 'profile' needs a profile name",
                    retryable=False,
                    code="Misconfigured",
                )
            return boto3.Session(region_name=region, profile_name=profile)
        if credentials_source == "environment":
            env = os.environ if environ is None else environ
            key_id = env.get("AWS_ACCESS_KEY_ID", "")
            secret = env.get("AWS_SECRET_ACCESS_KEY", "")
            if not key_id or not secret:
                raise AwsError(
                    "credentials source 'environment' needs AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY in the environment",
                    retryable=False,
                    code="NoCredentials",
                )
            return boto3.Session(
                region_name=region,
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            )
        if credentials_source == "assume-role":
            if not role_arn:
                raise AwsError(
                    "credentials source 'assume-role' needs a role ARN",
                    retryable=False,
                    code="Misconfigured",
                )
            return _assume_role_session(
                region=region,
                role_arn=role_arn,
                access_key=access_key,
                role_session_name=role_session_name,
                sts_endpoint_url=sts_endpoint_url,
                config=_client_config(region, connect_timeout_s, read_timeout_s),
            )
    except botocore.exceptions.BotoCoreError as exc:
        raise aws_error_from_exception(exc, "load AWS credentials") from None
    raise AwsError(
        f"unknown credentials source {credentials_source!r}", retryable=False, code="Misconfigured"
    )


def _assume_role_session(
    *,
    region: str,
    role_arn: str,
    access_key: AccessKey | None,
    role_session_name: str,
    sts_endpoint_url: str | None,
    config: Config,
) -> boto3.Session:
    source = botocore.session.Session()
    source.set_config_variable("region", region)
    if access_key is not None:
        source.set_credentials(
            access_key.access_key_id,
            access_key.secret_access_key,
            access_key.session_token or None,
        )
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise AwsError(
            f"no source credentials to assume {role_arn} with",
            retryable=False,
            code="NoCredentials",
        )

    def sts_client(service_name: str, **kwargs: Any) -> Any:
        # The fetcher passes the source credentials; we add the endpoint and timeouts.
        kwargs.setdefault("region_name", region)
        kwargs["config"] = config
        if sts_endpoint_url:
            kwargs["endpoint_url"] = sts_endpoint_url
        return source.create_client(service_name, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=sts_client,
        source_credentials=source_credentials,
        role_arn=role_arn,
        extra_args={"RoleSessionName": role_session_name},
    )
    # Deferred: nothing is fetched until the first call, and the credentials refresh
    # themselves before expiring, so a long-lived client keeps working.
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    assumed = botocore.session.Session()
    assumed.set_config_variable("region", region)
    # botocore has no public setter for refreshable credentials; this is the attribute its
    # own credential resolver fills.
    assumed._credentials = credentials
    return boto3.Session(botocore_session=assumed, region_name=region)


def build_autoscaling_client(
    *,
    region: str,
    credentials_source: CredentialsSource = "default-chain",
    profile: str = "",
    role_arn: str = "",
    access_key: AccessKey | None = None,
    endpoint_url: str | None = None,
    sts_endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 10.0,
) -> Any:
    """A boto3 ``autoscaling`` client with explicit timeouts and no SDK-level retries."""
    session = build_session(
        region=region,
        credentials_source=credentials_source,
        profile=profile,
        role_arn=role_arn,
        access_key=access_key,
        sts_endpoint_url=sts_endpoint_url,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
    )
    return session_client(
        session,
        "autoscaling",
        endpoint_url=endpoint_url,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
    )


def session_client(
    session: boto3.Session,
    service: Literal["autoscaling", "ec2"],
    *,
    endpoint_url: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 10.0,
) -> Any:
    """A boto3 client of ``session`` for ``service``, with explicit timeouts and one
    attempt (no SDK-level retries). Several clients of one session share its credentials
    (one role assumption for all of them)."""
    region = session.region_name or ""
    try:
        return session.client(
            service,
            endpoint_url=endpoint_url,
            config=_client_config(region, connect_timeout_s, read_timeout_s),
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise aws_error_from_exception(exc, f"create the {service} client") from None


@dataclass(frozen=True, slots=True)
class AutoScalingInstanceInfo:
    """One instance of a group as Auto Scaling sees it (``LifecycleState`` is e.g.
    ``Pending``, ``InService``, ``Terminating:Wait``, ``Standby``, ``Warmed:Running``)."""

    instance_id: str
    lifecycle_state: str
    health_status: str
    availability_zone: str


@dataclass(frozen=True, slots=True)
class Ec2InstanceInfo:
    """What the EC2 API says of one instance: where it listens and since when."""

    instance_id: str
    private_ip: str
    state: str  # pending, running, shutting-down, terminated, stopping, stopped
    availability_zone: str
    launched_at: datetime | None


@dataclass(frozen=True, slots=True)
class WarmPoolInfo:
    """A group's warm pool: instances kept pre-initialized beside the group's capacity.

    ``min_size`` is the least number of instances the pool holds; ``max_prepared`` is
    ``MaxGroupPreparedCapacity`` (``None``: the group's ``MaxSize`` bounds group plus pool);
    ``state`` is what the pooled instances are kept as (``Stopped``, ``Running`` or
    ``Hibernated``); ``instances`` counts those AWS listed (``Warmed:*`` states)."""

    min_size: int
    max_prepared: int | None
    state: str
    instances: int = 0


@dataclass(frozen=True, slots=True)
class AutoScalingGroupInfo:
    name: str
    desired_capacity: int
    min_size: int
    max_size: int
    in_service: int
    instances: int


def _call(action: str, fn: Callable[..., T], **kwargs: Any) -> T:
    """``fn(**kwargs)`` with every botocore failure turned into :class:`AwsError`."""
    try:
        return fn(**kwargs)
    except (
        botocore.exceptions.ClientError,
        botocore.exceptions.BotoCoreError,
        botocore.parsers.ResponseParserError,
    ) as exc:
        raise aws_error_from_exception(exc, action) from None


class AutoScalingClient:
    """The Auto Scaling calls the autoscaler makes, typed and with one error type.

    ``client`` is a boto3 ``autoscaling`` client, e.g. from
    :func:`build_autoscaling_client` (which sets its timeouts).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def _describe(self, name: str) -> dict[str, Any]:
        action = f"describe Auto Scaling group {name}"
        answer = _call(
            action,
            self.client.describe_auto_scaling_groups,
            AutoScalingGroupNames=[name],
            MaxRecords=1,
        )
        groups = answer.get("AutoScalingGroups") or []
        if not groups:
            raise AwsError(
                f"{action}: no Auto Scaling group named {name!r} in this account and region",
                retryable=False,
                code="NotFound",
            )
        return dict(groups[0])

    def describe_group(self, name: str) -> AutoScalingGroupInfo:
        group = self._describe(name)
        instances = group.get("Instances") or []
        return AutoScalingGroupInfo(
            name=str(group["AutoScalingGroupName"]),
            desired_capacity=int(group["DesiredCapacity"]),
            min_size=int(group["MinSize"]),
            max_size=int(group["MaxSize"]),
            in_service=sum(1 for i in instances if i.get("LifecycleState") == "InService"),
            instances=len(instances),
        )

    def set_desired_capacity(
        self, name: str, desired: int, *, honor_cooldown: bool = False
    ) -> None:
        _call(
            f"set desired capacity of Auto Scaling group {name} to {desired}",
            self.client.set_desired_capacity,
            AutoScalingGroupName=name,
            DesiredCapacity=desired,
            HonorCooldown=honor_cooldown,
        )

    def terminate_instance(self, instance_id: str, *, decrement_desired: bool = True) -> None:
        """Terminate one instance of its group; with ``decrement_desired`` the group's desired
        capacity drops by one, so this instance, not one the termination policy picks,
        is the one that goes."""
        _call(
            f"terminate instance {instance_id} of its Auto Scaling group",
            self.client.terminate_instance_in_auto_scaling_group,
            InstanceId=instance_id,
            ShouldDecrementDesiredCapacity=decrement_desired,
        )

    def group_instances(self, name: str) -> list[AutoScalingInstanceInfo]:
        """Every instance of the group with its lifecycle state, in the group's order."""
        group = self._describe(name)
        return [
            AutoScalingInstanceInfo(
                instance_id=str(item["InstanceId"]),
                lifecycle_state=str(item.get("LifecycleState") or ""),
                health_status=str(item.get("HealthStatus") or ""),
                availability_zone=str(item.get("AvailabilityZone") or ""),
            )
            for item in group.get("Instances") or []
        ]

    def describe_warm_pool(self, name: str) -> WarmPoolInfo | None:
        """The group's warm pool, or ``None`` when it has none (or one being deleted)."""
        answer = _call(
            f"describe the warm pool of Auto Scaling group {name}",
            self.client.describe_warm_pool,
            AutoScalingGroupName=name,
        )
        config = answer.get("WarmPoolConfiguration") or {}
        if not config or config.get("Status") == "PendingDelete":
            return None
        prepared = config.get("MaxGroupPreparedCapacity")
        return WarmPoolInfo(
            min_size=int(config.get("MinSize") or 0),
            max_prepared=None if prepared is None or prepared == -1 else int(prepared),
            state=str(config.get("PoolState") or "Stopped"),
            instances=len(answer.get("Instances") or []),
        )

    def put_warm_pool(
        self, name: str, *, min_size: int, state: str, max_prepared: int | None = None
    ) -> None:
        """Create or replace the group's warm pool (``PutWarmPool``)."""
        kwargs: dict[str, Any] = {
            "AutoScalingGroupName": name,
            "MinSize": min_size,
            "PoolState": state,
        }
        if max_prepared is not None:
            kwargs["MaxGroupPreparedCapacity"] = max_prepared
        _call(
            f"put a warm pool of {min_size} {state} instances on Auto Scaling group {name}",
            self.client.put_warm_pool,
            **kwargs,
        )

    def delete_warm_pool(self, name: str, *, force: bool = False) -> None:
        """Delete the group's warm pool; ``force`` also terminates its instances at once
        instead of waiting for their lifecycle actions."""
        _call(
            f"delete the warm pool of Auto Scaling group {name}",
            self.client.delete_warm_pool,
            AutoScalingGroupName=name,
            ForceDelete=force,
        )


# Ids per DescribeInstances request: a filter takes at most 200 values.
_EC2_IDS_PER_REQUEST = 200


class Ec2Client:
    """The EC2 read the control plane makes (instances' private addresses), typed and with
    one error type. ``client`` is a boto3 ``ec2`` client, e.g. from :func:`session_client`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe_instances(self, instance_ids: list[str]) -> dict[str, Ec2InstanceInfo]:
        """The instances among ``instance_ids`` that EC2 knows, by id (pages followed).

        The ids go in an ``instance-id`` filter, not ``InstanceIds``: with ``InstanceIds``
        one id EC2 no longer knows (an instance Auto Scaling still listed a moment ago)
        fails the whole request with ``InvalidInstanceID.NotFound``; a filter just leaves
        it out."""
        found: dict[str, Ec2InstanceInfo] = {}
        for start in range(0, len(instance_ids), _EC2_IDS_PER_REQUEST):
            batch = instance_ids[start : start + _EC2_IDS_PER_REQUEST]
            action = f"describe EC2 instances {', '.join(batch[:3])}" + (
                f" and {len(batch) - 3} more" if len(batch) > 3 else ""
            )
            token = ""
            while True:
                kwargs: dict[str, Any] = {"Filters": [{"Name": "instance-id", "Values": batch}]}
                if token:
                    kwargs["NextToken"] = token
                answer = _call(action, self.client.describe_instances, **kwargs)
                for reservation in answer.get("Reservations") or []:
                    for item in reservation.get("Instances") or []:
                        info = _ec2_instance(item)
                        found[info.instance_id] = info
                token = str(answer.get("NextToken") or "")
                if not token:
                    break
        return found


def _ec2_instance(item: Mapping[str, Any]) -> Ec2InstanceInfo:
    launched = item.get("LaunchTime")
    return Ec2InstanceInfo(
        instance_id=str(item["InstanceId"]),
        private_ip=str(item.get("PrivateIpAddress") or ""),
        state=str((item.get("State") or {}).get("Name") or ""),
        availability_zone=str((item.get("Placement") or {}).get("AvailabilityZone") or ""),
        launched_at=launched if isinstance(launched, datetime) else None,
    )
