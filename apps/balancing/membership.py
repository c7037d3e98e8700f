"""Who is behind a deployment right now, from what the control plane already knows.

A load balancer in front of a deployment needs its *members*: every replica with the
address and port it listens on and whether it should get traffic. The control plane scales
those replicas, so it asks the same system it scales (:func:`members_of` dispatches on the
deployment's scale target kind):

``simulated``
    The fleet simulator's replica endpoints (apps/fleetsim/replica_http.py): ``GET
    /endpoints`` on the simulator API at ``FLEETSIM_URL`` (the one the simulated actuator
    scales through), or the endpoints JSON file it rewrites on every change. A ``ready``
    replica is *serving*, a ``starting`` one (cold start: weights loading) *loading*, one
    being removed *draining* (it finishes what it holds and its port stops accepting).
``k8s-deployment``, ``k8s-statefulset``
    The EndpointSlices (``discovery.k8s.io/v1``) of the Service in front of the workload,
    through the cluster's client (apps/integrations/kubernetes). The Service is the one
    named by the deployment label ``balancing.llm-controlplane/service``, else the one
    named like the scale target. It should select this workload's pods only. Conditions
    map as the API defines them (a missing ``ready``/``serving`` reads as true, a missing
    ``terminating`` as false): serving and not terminating, and ready, is *serving*;
    terminating while still serving is *draining* (a pod inside its grace period), and
    terminating and no longer serving *down*; not serving (the readiness probe fails) is
    *loading*. An EndpointSlice cannot tell a pod that still loads its weights from one
    whose probe started failing later; both are out of the upstream either way. The port
    is the slice's only port, else the one named by the label
    ``balancing.llm-controlplane/port`` (a port name or number), else the one named
    ``http``. A pod labelled ``autoscaling.llm-controlplane/standby=asleep`` (a standby
    replica whose vLLM sleeps, apps/autoscaling/actuators/standby.py) is not a member at
    all: its readiness probe still passes, so its EndpointSlice entry reads as ready, and
    the pods carrying the label are listed to leave it out.
``aws-asg``
    The Auto Scaling group's instances (``DescribeAutoScalingGroups``) and their private
    addresses (EC2 ``DescribeInstances``), through apps/integrations/aws. ``Pending*`` is
    *loading*, ``InService`` *serving* (or *down* when Auto Scaling marks it Unhealthy or
    EC2 no longer has it running), ``Terminating*`` and ``Detaching`` *draining*;
    instances in ``Standby``, a warm pool (``Warmed:*``), detached or terminated are not
    members at all. An instance does not say which port its model server listens on: it is
    the label ``balancing.llm-controlplane/port`` (a number), else 8000, vLLM's default.

Only *serving* members belong in an upstream; *loading* ones join when they are ready,
*draining* ones have left it, *down* ones are listed so an operator sees them.

Addresses are listed, not called: nothing here connects to a member, so the outbound
address policy (apps/core/netguard.py) is not applied to them. Whatever does call members
(a health check made by the control plane) must check each address there; a gateway on
the deployment's own network calls them by design.

Failures raise :class:`MembershipError`, whose ``retryable`` says whether asking again
can help (timeouts, 5xx, throttling) or not (no such Service or group, refused
credentials, a misconfigured port).

Which members a scale-down removes is decided in advance by :func:`members_to_remove`, so
they can be drained from every gateway before the actuator removes them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import requests
import structlog

from apps.balancing.members import MEMBER_STATES, Member, MemberState
from apps.core.digits import ascii_int
from apps.integrations.aws import AutoScalingClient, AwsError, Ec2Client
from apps.integrations.kubernetes import (
    STANDBY_ASLEEP,
    STANDBY_POD_LABEL,
    EndpointPortInfo,
    EndpointSliceInfo,
    KubernetesClient,
    KubernetesError,
)

if TYPE_CHECKING:
    from apps.inventory.models import Deployment

__all__ = [
    "DEFAULT_MEMBER_PORT",
    "LABEL_PORT",
    "LABEL_SERVICE",
    "MEMBER_STATES",
    "Member",
    "MemberSet",
    "MemberState",
    "MembershipError",
    "RemovalOrder",
    "asg_instance_state",
    "asg_members",
    "endpoint_state",
    "kubernetes_members",
    "members_of",
    "members_to_remove",
    "removal_order_for",
    "simulator_members",
    "simulator_state",
]

logger = structlog.get_logger("controlplane.balancing.membership")

# Deployment labels that say where members listen (see the module docstring).
LABEL_SERVICE = "balancing.llm-controlplane/service"
LABEL_PORT = "balancing.llm-controlplane/port"
# vLLM's OpenAI-compatible server listens on 8000 unless told otherwise.
DEFAULT_MEMBER_PORT = 8000


@dataclass(frozen=True, slots=True)
class MemberSet:
    """The members of one deployment, where they were read (``source``) and when."""

    members: tuple[Member, ...]
    source: str
    observed_at: datetime

    def __iter__(self) -> Iterator[Member]:
        """The members themselves, so a MemberSet reads like the list of them."""
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def in_state(self, state: MemberState) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.state == state)

    @property
    def serving(self) -> tuple[Member, ...]:
        """The members an upstream should contain."""
        return self.in_state("serving")


class MembershipError(Exception):
    """The members could not be read. ``retryable``: asking again later can help.
    ``reason`` is short and machine-readable (``timeout``, ``unreachable``,
    ``not-found``, ``misconfigured``, ``forbidden``, ``unexpected-response``, ...)."""

    def __init__(self, message: str, *, retryable: bool, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"MembershipError({self.message!r}, retryable={self.retryable}, reason={self.reason!r})"
        )


def _now() -> datetime:
    return datetime.now(tz=UTC)


# ------------------------------------------------------------------ state mapping


_SIMULATOR_STATES: dict[str, MemberState] = {
    "ready": "serving",
    "starting": "loading",
    "draining": "draining",
}


def simulator_state(state: str) -> MemberState:
    """A simulator replica's state as a member state (an unknown one is ``down``)."""
    return _SIMULATOR_STATES.get(state, "down")


def endpoint_state(
    *, ready: bool | None, serving: bool | None, terminating: bool | None
) -> MemberState:
    """An EndpointSlice endpoint's conditions as a member state (``None`` is an absent
    condition: ready and serving read as true, terminating as false, as the API says)."""
    is_serving = serving is not False
    if terminating:
        return "draining" if is_serving else "down"
    if is_serving and ready is not False:
        return "serving"
    return "loading"


def asg_instance_state(
    lifecycle_state: str, *, health_status: str = "Healthy", ec2_state: str = "running"
) -> MemberState | None:
    """An Auto Scaling instance as a member state; ``None`` when it is not a member
    (standby, warm pool, detached, terminated, or a state this code does not know)."""
    if lifecycle_state.startswith("Pending"):
        return "loading"
    if lifecycle_state == "InService":
        if health_status == "Unhealthy" or ec2_state not in ("running", ""):
            return "down"
        return "serving"
    if lifecycle_state.startswith("Terminating") or lifecycle_state == "Detaching":
        return "draining"
    return None


# ------------------------------------------------------------------ which to remove


RemovalOrder = Literal["least-disruptive", "highest-ordinal"]

_REMOVAL_RANK: dict[MemberState, int] = {"down": 0, "loading": 1, "serving": 2}
_ORDINAL = re.compile(r"-([0-9]{1,9})\Z")


def _ordinal(name: str) -> int:
    match = _ORDINAL.search(name)
    return int(match.group(1)) if match else -1


def removal_order_for(target_kind: str) -> RemovalOrder:
    """StatefulSets always remove their highest ordinals; everything else can be told."""
    return "highest-ordinal" if target_kind == "k8s-statefulset" else "least-disruptive"


def members_to_remove(
    members: Iterable[Member],
    count: int,
    *,
    load: Mapping[str, float] | None = None,
    order: RemovalOrder = "least-disruptive",
) -> list[Member]:
    """The ``count`` members a scale-down by ``count`` should remove, first to go first.

    Draining members are never chosen: they already left the spec. The choice depends only
    on the members (not on their order) and ``load`` (any unit, higher is busier, by
    member name):

    ``least-disruptive``
        Down members first, then loading ones (neither serves a request, so removing them
        costs nothing; the ReplicaSet controller and the simulator also remove unready
        replicas first), then serving ones from the least loaded (the fewest streams to
        drain; a member without a known load counts as busier than any measured one),
        then the newest (``started_at``, else the highest ordinal in the name): a
        long-lived replica holds warm prefix caches and the keys consistent hashing sent
        it. Ties end on the name, so the result is deterministic.
    ``highest-ordinal``
        What a StatefulSet removes whatever we prefer: its highest ordinals.

    The platform must then remove exactly these: the simulator and an Auto Scaling group
    through their actuators' ``set_replicas(..., remove=...)``, a Kubernetes Deployment
    through the lowest ``pod-deletion-cost`` on them (the actuator's scale-down
    preparation, given the lowest load for them).
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    loads = load or {}
    candidates = [m for m in members if m.state != "draining"]
    if order == "highest-ordinal":
        ranked = sorted(candidates, key=lambda m: (-_ordinal(m.name), m.name))
    else:

        def key(m: Member) -> tuple[int, float, float, int, str]:
            measured = loads.get(m.name)
            busy = measured if measured is not None and not math.isnan(measured) else math.inf
            started = m.started_at.timestamp() if m.started_at is not None else -math.inf
            return (_REMOVAL_RANK[m.state], busy, -started, -_ordinal(m.name), m.name)

        ranked = sorted(candidates, key=key)
    return ranked[:count]


# ------------------------------------------------------------------ the simulator


def _simulator_endpoint_members(
    entries: Any, *, namespace: str, name: str, source: str
) -> tuple[Member, ...]:
    if not isinstance(entries, dict) or not isinstance(entries.get("endpoints"), list):
        raise MembershipError(
            f'{source}: expected {{"endpoints": [...]}}',
            retryable=True,
            reason="unexpected-response",
        )
    members = []
    try:
        for entry in entries["endpoints"]:
            if entry["namespace"] != namespace or entry["deployment"] != name:
                continue
            members.append(
                Member(
                    name=str(entry["pod"]),
                    address=str(entry["host"]),
                    port=int(entry["port"]),
                    state=simulator_state(str(entry["state"])),
                    extra={"model": str(entry.get("model") or "")},
                )
            )
    except (TypeError, KeyError, ValueError):
        raise MembershipError(
            f"{source}: an endpoint lacks namespace, deployment, pod, host, port or state",
            retryable=True,
            reason="unexpected-response",
        ) from None
    return tuple(sorted(members, key=lambda m: (_ordinal(m.name), m.name)))


def simulator_members(
    *,
    namespace: str,
    name: str,
    base_url: str = "",
    endpoints_file: Path | None = None,
    session: requests.Session | None = None,
    timeout_s: float = 5.0,
) -> MemberSet:
    """The replicas of simulated deployment ``namespace/name``, from the simulator API at
    ``base_url`` (``GET /endpoints``) or, when given, its ``endpoints_file``."""
    if endpoints_file is not None:
        source = f"fleet simulator endpoints file {endpoints_file}"
        try:
            entries = json.loads(endpoints_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            # Not written yet: the simulator has not started serving its replicas.
            raise MembershipError(
                f"{source} does not exist (yet)", retryable=True, reason="unavailable"
            ) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise MembershipError(
                f"{source} is unreadable: {exc}", retryable=False, reason="misconfigured"
            ) from None
    else:
        url = f"{base_url.rstrip('/')}/endpoints"
        source = f"fleet simulator {url}"
        try:
            if session is not None:
                response = session.get(url, timeout=timeout_s)
            else:
                with requests.Session() as own:
                    response = own.get(url, timeout=timeout_s)
        except requests.Timeout:
            raise MembershipError(
                f"{source} did not answer within {timeout_s:g}s", retryable=True, reason="timeout"
            ) from None
        except requests.RequestException as exc:
            raise MembershipError(
                f"{source} unreachable: {exc}", retryable=True, reason="unreachable"
            ) from None
        if response.status_code != 200:
            status = response.status_code
            retryable = status >= 500 or status in (408, 429)
            # 404: the simulator runs without --serve-replicas (no endpoints to list).
            raise MembershipError(
                f"{source} answered {status}: {response.text[:200]}",
                retryable=retryable,
                reason="server-error" if retryable else "not-served",
            )
        try:
            entries = response.json()
        except ValueError:
            raise MembershipError(
                f"{source} answered something that is not JSON",
                retryable=True,
                reason="unexpected-response",
            ) from None
    members = _simulator_endpoint_members(entries, namespace=namespace, name=name, source=source)
    return MemberSet(members, source, _now())


# ------------------------------------------------------------------ Kubernetes


def _slice_port(ports: Sequence[EndpointPortInfo], wanted: str, *, where: str) -> int:
    usable = [p for p in ports if p.port is not None and p.protocol in ("TCP", "")]
    chosen: list[EndpointPortInfo]
    if wanted:
        chosen = [p for p in usable if p.name == wanted or str(p.port) == wanted]
        what = f"no port {wanted!r} (label {LABEL_PORT})"
    elif len(usable) == 1:
        chosen = usable
    else:
        chosen = [p for p in usable if p.name == "http"]
        what = f"{len(usable)} TCP ports and none named http: name one with label {LABEL_PORT}"
    if not chosen:
        raise MembershipError(f"{where}: {what}", retryable=False, reason="misconfigured")
    port = chosen[0].port
    assert port is not None
    return port


def _slice_members(slice_: EndpointSliceInfo, *, port_wanted: str, where: str) -> list[Member]:
    if slice_.address_type not in ("IPv4", "IPv6") or not slice_.endpoints:
        return []
    port = _slice_port(slice_.ports, port_wanted, where=f"{where}, EndpointSlice {slice_.name}")
    members = []
    for endpoint in slice_.endpoints:
        if not endpoint.addresses:
            continue
        name = endpoint.target_name or endpoint.hostname or endpoint.addresses[0]
        extra = {"node": endpoint.node_name} if endpoint.node_name else {}
        members.append(
            Member(
                name=name,
                address=endpoint.addresses[0],
                port=port,
                state=endpoint_state(
                    ready=endpoint.ready,
                    serving=endpoint.serving,
                    terminating=endpoint.terminating,
                ),
                zone=endpoint.zone,
                extra=extra,
            )
        )
    return members


def kubernetes_members(
    *, client: KubernetesClient, namespace: str, service: str, port: str = ""
) -> MemberSet:
    """The pods behind Service ``namespace/service``, from its EndpointSlices. ``port``
    names the member port (a port name or number) when a slice has several."""
    where = f"Service {namespace}/{service}"
    try:
        slices = client.list_endpoint_slices(namespace, service)
        asleep = {
            pod.name for pod in client.list_pods(namespace, f"{STANDBY_POD_LABEL}={STANDBY_ASLEEP}")
        }
    except KubernetesError as exc:
        raise MembershipError(
            exc.message, retryable=exc.retryable, reason=exc.reason or "failed"
        ) from None
    by_name: dict[str, Member] = {}
    # A dual-stack Service has one slice per family: IPv4 first, so a pod's IPv4 address
    # wins; a pod that shows up twice while the controller moves it keeps its first entry.
    for slice_ in sorted(slices, key=lambda s: (s.address_type != "IPv4", s.name)):
        for member in _slice_members(slice_, port_wanted=port, where=where):
            if member.name not in asleep:
                by_name.setdefault(member.name, member)
    members = tuple(sorted(by_name.values(), key=lambda m: m.name))
    return MemberSet(members, f"EndpointSlices of {where}", _now())


# ------------------------------------------------------------------ AWS


def _aws_membership_error(exc: AwsError) -> MembershipError:
    reason = {
        "NotFound": "not-found",
        "ValidationError": "invalid",
        "NoCredentials": "unauthorized",
        "Misconfigured": "misconfigured",
        "Timeout": "timeout",
        "Unreachable": "unreachable",
    }.get(exc.code, exc.code or "failed")
    return MembershipError(exc.message, retryable=exc.retryable, reason=reason)


def asg_members(
    *, autoscaling: AutoScalingClient, ec2: Ec2Client, group: str, port: int
) -> MemberSet:
    """The instances of Auto Scaling group ``group`` that are members (see the module
    docstring), at their private addresses on ``port``."""
    try:
        instances = autoscaling.group_instances(group)
        states = {
            i.instance_id: asg_instance_state(i.lifecycle_state, health_status=i.health_status)
            for i in instances
        }
        wanted = [i.instance_id for i in instances if states[i.instance_id] is not None]
        described = ec2.describe_instances(wanted) if wanted else {}
    except AwsError as exc:
        raise _aws_membership_error(exc) from None
    members = []
    for instance in instances:
        info = described.get(instance.instance_id)
        if states[instance.instance_id] is None or info is None or not info.private_ip:
            # Not a member, or EC2 has no address for it yet (or any more).
            continue
        state = asg_instance_state(
            instance.lifecycle_state, health_status=instance.health_status, ec2_state=info.state
        )
        assert state is not None
        members.append(
            Member(
                name=instance.instance_id,
                address=info.private_ip,
                port=port,
                state=state,
                zone=instance.availability_zone or info.availability_zone,
                started_at=info.launched_at,
                extra={"lifecycle_state": instance.lifecycle_state},
            )
        )
    members.sort(key=lambda m: m.name)
    return MemberSet(tuple(members), f"Auto Scaling group {group}", _now())


# ------------------------------------------------------------------ dispatch


def _label_port(deployment: Deployment) -> str:
    return str((deployment.labels or {}).get(LABEL_PORT) or "").strip()


def _aws_port(deployment: Deployment) -> int:
    raw = _label_port(deployment)
    if not raw:
        return DEFAULT_MEMBER_PORT
    port = ascii_int(raw, max_digits=5)
    if port is None or not 1 <= port <= 65535:
        raise MembershipError(
            f"deployment {deployment.name}: label {LABEL_PORT}={raw!r} is not a TCP port",
            retryable=False,
            reason="misconfigured",
        )
    return port


def members_of(
    *,
    deployment: Deployment,
    fleetsim_url: str = "",
    endpoints_file: Path | None = None,
    timeout_s: float = 5.0,
) -> MemberSet:
    """The members of ``deployment`` from the system its scale target lives in.

    Simulated deployments are read from ``endpoints_file`` when given, else from the
    simulator API at ``fleetsim_url`` (default: the ``FLEETSIM_URL`` setting). Clusters
    are reached with the same credentials, and the same refusals, as their actuators
    (apps/inventory/clients.py).
    """
    from apps.integrations.aws import session_client
    from apps.inventory.clients import (
        ClusterAccessError,
        aws_session_for,
        kubernetes_client_for,
        usable_cluster_of,
    )

    kind = deployment.target_kind
    log = logger.bind(deployment_id=deployment.pk, target_kind=kind)
    try:
        if kind == "simulated":
            from django.conf import settings

            result = simulator_members(
                namespace=deployment.scale_target_namespace,
                name=deployment.scale_target_name,
                base_url=fleetsim_url or settings.FLEETSIM_URL or "http://127.0.0.1:9400",
                endpoints_file=endpoints_file,
                timeout_s=timeout_s,
            )
        elif kind in ("k8s-deployment", "k8s-statefulset"):
            cluster = usable_cluster_of(deployment)
            client = kubernetes_client_for(cluster)
            client.timeout_s = timeout_s
            service = str((deployment.labels or {}).get(LABEL_SERVICE) or "")
            result = kubernetes_members(
                client=client,
                namespace=deployment.scale_target_namespace,
                service=service or deployment.scale_target_name,
                port=_label_port(deployment),
            )
        elif kind == "aws-asg":
            port = _aws_port(deployment)
            cluster = usable_cluster_of(deployment)
            try:
                session = aws_session_for(cluster)
                autoscaling = session_client(session, "autoscaling", read_timeout_s=timeout_s)
                ec2 = session_client(session, "ec2", read_timeout_s=timeout_s)
            except AwsError as exc:
                raise _aws_membership_error(exc) from None
            result = asg_members(
                autoscaling=AutoScalingClient(autoscaling),
                ec2=Ec2Client(ec2),
                group=deployment.scale_target_name,
                port=port,
            )
        else:
            raise MembershipError(
                f"deployment {deployment.name}: unknown scale target kind {kind!r}",
                retryable=False,
                reason="misconfigured",
            )
    except ClusterAccessError as exc:
        # The cluster's credentials are refused or unusable: configuration to fix.
        log.warning("membership-read-failed", error=exc.message, retryable=False)
        raise MembershipError(exc.message, retryable=False, reason=exc.reason) from None
    except MembershipError as exc:
        log.warning("membership-read-failed", error=exc.message, retryable=exc.retryable)
        raise
    log.info(
        "membership-read",
        source=result.source,
        **{state: len(result.in_state(state)) for state in MEMBER_STATES},
    )
    return result
