"""Reading what a gateway serves: its deployments' policies, members and degradation
toggles, rendered and checked by ``nginx -t`` (cached by version: the same text is
checked once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from django.core.cache import cache
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from apps.inventory.models import Deployment, DeploymentStatus
from apps.toggles.evaluation import evaluate
from apps.toggles.presets import Preset
from apps.toggles.selectors import team_toggles

from . import membership
from .membership import MembershipError
from .models import BalancingPolicy, DrainingMember, Gateway, GatewayDeployment, GatewayReport
from .render import (
    Degradation,
    Member,
    Rendered,
    RenderError,
    Site,
    nginx_binary,
    nginx_test,
    render_text,
    text_version,
)
from .spec import PolicySpec

MembersOf = Callable[[Deployment], Sequence[Member]]
CHECK_CACHE_S = 24 * 3600


def draining_marked(deployment: Deployment, members: Sequence[Member]) -> list[Member]:
    """``members`` with those a scale-down is draining (a :class:`DrainingMember` row that
    has not expired) marked ``draining``: they leave every upstream they were in."""
    draining = set(
        DrainingMember.objects.filter(
            deployment=deployment, expires_at__gt=timezone.now()
        ).values_list("name", flat=True)
    )
    if not draining:
        return list(members)
    return [
        replace(m, state="draining") if m.name in draining and m.state != "draining" else m
        for m in members
    ]


def deployment_members(deployment: Deployment) -> list[Member]:
    """The deployment's members from :mod:`apps.balancing.membership` (discovery per
    scale target), as the renderer takes them (weights come from the policy), those being
    drained marked ``draining``. Raises
    :class:`~apps.balancing.membership.MembershipError` when they cannot be read."""
    return draining_marked(deployment, list(membership.members_of(deployment=deployment)))


def deployment_degradation(*, team_id: int, deployment_name: str) -> Degradation:
    """The unconditional values of the deployment's degradation toggles (team-wide ones
    unless the deployment has its own; degradation-level overrides included)."""
    values: dict[str, Any] = {}
    for definition in team_toggles(team_id=team_id).for_deployment(deployment_name).values():
        preset = definition.metadata.get("preset")
        if preset in {p.value for p in Preset} and preset != Preset.CUSTOM:
            values[str(preset)] = evaluate(definition, {}).value
    shed = values.get(Preset.SHED_FRACTION) or {}
    return Degradation(
        shed_fraction={str(k): float(v) for k, v in shed.items()} if isinstance(shed, dict) else {},
        maintenance=str(values.get(Preset.MAINTENANCE) or ""),
        fallback=str(values.get(Preset.FALLBACK_DEPLOYMENT) or ""),
        max_output_tokens=int(values.get(Preset.MAX_OUTPUT_TOKENS) or 0),
        max_context_tokens=int(values.get(Preset.MAX_CONTEXT_TOKENS) or 0),
    )


def _policy_of(deployment: Deployment) -> PolicySpec:
    policy = BalancingPolicy.objects.filter(deployment=deployment).first()
    return policy.spec() if policy is not None else PolicySpec()


def gateway_sites(*, gateway: Gateway, members_of: MembersOf | None = None) -> list[Site]:
    """The sites of the gateway's deployments, in its order; members from ``members_of``
    (default: :func:`deployment_members`), those being drained marked ``draining`` in the
    deployment's own upstream and in any fallback upstream it serves as."""
    given = members_of

    def members_in(deployment: Deployment) -> Sequence[Member]:
        # Looked up when called, so that a replaced deployment_members is the one used.
        if given is None:
            return deployment_members(deployment)
        return draining_marked(deployment, given(deployment))

    deployments = list(gateway.deployments.order_by("gatewaydeployment__position", "pk"))
    sites = []
    for deployment in deployments:
        degradation = deployment_degradation(
            team_id=gateway.team_id, deployment_name=deployment.name
        )
        fallback_members: Sequence[Member] = ()
        if degradation.fallback:
            fallback = Deployment.objects.filter(
                team_id=gateway.team_id,
                name=degradation.fallback,
                status=DeploymentStatus.ACTIVE,
            ).first()
            fallback_members = members_in(fallback) if fallback is not None else ()
        sites.append(
            Site(
                deployment=deployment.name,
                policy=_policy_of(deployment),
                members=members_in(deployment),
                degradation=degradation,
                fallback_members=fallback_members,
            )
        )
    return sites


def gateway_listen(gateway: Gateway) -> str:
    """nginx's ``listen`` of the gateway: ``address:port``, or the port alone (every
    address) when no address is set."""
    port = str(gateway.listen_port)
    return f"{gateway.listen_address}:{port}" if gateway.listen_address else port


def gateway_config(*, gateway: Gateway, members_of: MembersOf | None = None) -> Rendered:
    """The gateway's configuration, its version and what ``nginx -t`` says of it. Inputs
    the renderer refuses (a priority class of a shed toggle that is not a plain name, a
    member address discovery got wrong) are errors too: nothing half-checked is served."""
    try:
        sites = gateway_sites(gateway=gateway, members_of=members_of)
    except MembershipError as exc:
        when = "retrying later may help" if exc.retryable else "retrying will not help"
        return Rendered(text="", sha256="", errors=[f"members: {exc.message} ({when})"])
    try:
        text = render_text(listen=gateway_listen(gateway), sites=sites)
    except RenderError as exc:
        messages = [f"{field}: {message}" for field, message in exc.errors.items()]
        return Rendered(text="", sha256="", errors=messages)
    version = text_version(text)
    key = f"balancing:nginx-t:{version}"
    errors = cache.get(key)
    if errors is None:
        binary = nginx_binary()
        if binary is None:
            # Not cached: installing nginx must not wait a day to take effect.
            return Rendered(
                text, version, ["nginx is not installed: the configuration cannot be checked."]
            )
        errors = nginx_test(text, binary=binary)
        cache.set(key, errors, CHECK_CACHE_S)
    return Rendered(text=text, sha256=version, errors=list(errors))


def gateway_last_report(*, gateway: Gateway) -> GatewayReport | None:
    return gateway.reports.order_by("-received_at", "-pk").first()


def gateways_listed(queryset: QuerySet[Gateway]) -> QuerySet[Gateway]:
    """Gateways with what their list shows fetched in a fixed number of queries: the
    deployments in order (``ordered_links``) and the id of the last report
    (``last_report_id``) with the reports themselves (``recent_reports``)."""
    last = GatewayReport.objects.filter(gateway=OuterRef("pk")).order_by("-received_at", "-pk")
    links = GatewayDeployment.objects.select_related("deployment").order_by("position", "pk")
    return queryset.annotate(last_report_id=Subquery(last.values("pk")[:1])).prefetch_related(
        Prefetch("gatewaydeployment_set", queryset=links, to_attr="ordered_links")
    )
