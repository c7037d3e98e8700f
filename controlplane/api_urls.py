"""Every /api/v1/ route, one router for all apps."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from apps.accounts import api as accounts_api
from apps.alerts import api as alerts_api
from apps.audit import api as audit_api
from apps.autoscaling import api as autoscaling_api
from apps.balancing import api as balancing_api
from apps.golive import api as golive_api
from apps.inventory import api as inventory_api
from apps.logs.tokens import api as logs_tokens_api
from apps.metrics import api as metrics_api
from apps.slos import api as slos_api
from apps.toggles import api as toggles_api
from apps.toggles.tokens import api as toggles_tokens_api

# No ".json" format-suffix routes: the API answers JSON anyway, and DRF passes the suffix
# to custom actions as a `format` argument none of them takes (a 500 on every one).
router = DefaultRouter()
router.include_format_suffixes = False
router.register("teams", accounts_api.TeamViewSet, basename="team")
router.register("memberships", accounts_api.MembershipViewSet, basename="membership")
router.register("tokens", accounts_api.ApiTokenViewSet, basename="apitoken")
router.register("clusters", inventory_api.ClusterViewSet, basename="cluster")
router.register("models", inventory_api.LLMModelViewSet, basename="llmmodel")
router.register("deployments", inventory_api.DeploymentViewSet, basename="deployment")
router.register("audit", audit_api.AuditEntryViewSet, basename="auditentry")
router.register(
    "metrics/deployments", metrics_api.DeploymentMetricsViewSet, basename="deploymentmetrics"
)
router.register("slos", slos_api.SloViewSet, basename="slo")
router.register(
    "autoscaling/policies", autoscaling_api.AutoscalingPolicyViewSet, basename="autoscalingpolicy"
)
router.register(
    "autoscaling/decisions", autoscaling_api.DecisionRecordViewSet, basename="decisionrecord"
)
router.register("autoscaling/actions", autoscaling_api.ScaleActionViewSet, basename="scaleaction")
router.register("autoscaling/control", autoscaling_api.ControlViewSet, basename="control")
router.register("slo-events", slos_api.SloEventViewSet, basename="sloevent")
router.register("alerts/silences", alerts_api.SilenceViewSet, basename="silence")
router.register("alerts/inhibit-rules", alerts_api.InhibitRuleViewSet, basename="inhibitrule")
router.register("alerts/channels", alerts_api.ChannelViewSet, basename="channel")
router.register("alerts/routes", alerts_api.RouteViewSet, basename="route")
router.register("alerts/deliveries", alerts_api.DeliveryViewSet, basename="delivery")
router.register("alerts/rules", alerts_api.AlertRuleViewSet, basename="alertrule")
router.register("alerts/receivers", alerts_api.ReceiverViewSet, basename="receiver")
router.register("alerts", alerts_api.AlertViewSet, basename="alert")
router.register("logs/ingest-tokens", logs_tokens_api.IngestTokenViewSet, basename="logingesttoken")
# Before any "toggles" route: a toggles/{pk}/ detail route would take "gateway-tokens".
router.register(
    "toggles/gateway-tokens", toggles_tokens_api.GatewayTokenViewSet, basename="togglegatewaytoken"
)
router.register("metrics/custom-queries", metrics_api.CustomQueryViewSet, basename="customquery")
router.register(
    "toggles/policies", toggles_api.DegradationPolicyViewSet, basename="degradationpolicy"
)
router.register("toggles", toggles_api.ToggleViewSet, basename="toggle")
router.register(
    "balancing/policies", balancing_api.BalancingPolicyViewSet, basename="balancingpolicy"
)
router.register("balancing/gateways", balancing_api.GatewayViewSet, basename="gateway")
router.register(
    "golive/deployments", golive_api.GoLiveDeploymentViewSet, basename="golivedeployment"
)
router.register("golive/loadtests", golive_api.LoadTestRunViewSet, basename="loadtestrun")

urlpatterns = [
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path(
        "alerts/webhook/alertmanager/",
        alerts_api.AlertmanagerWebhookView.as_view(),
        name="alertmanager-webhook",
    ),
    path("autoscaling/pause/", autoscaling_api.GlobalPauseView.as_view(), name="global-pause"),
    path("autoscaling/backtests/", autoscaling_api.BacktestView.as_view(), name="backtest"),
    path("metrics/summary/", metrics_api.FleetSummaryView.as_view(), name="metrics-summary"),
    path("metrics/catalogue/", metrics_api.CatalogueView.as_view(), name="metrics-catalogue"),
    path("logs/", include("apps.logs.read_api")),
    path("toggles/switch/", toggles_api.DegradationSwitchView.as_view(), name="degradation-switch"),
    path(
        "balancing/gateways/<str:name>/config",
        balancing_api.GatewayConfigView.as_view(),
        name="gateway-config",
    ),
    path(
        "balancing/gateways/<str:name>/report",
        balancing_api.GatewayReportView.as_view(),
        name="gateway-report",
    ),
    *router.urls,
]
