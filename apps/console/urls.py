"""URLs of the web console, mounted at /console/."""

from __future__ import annotations

from django.urls import path

from .views import (
    alerts,
    audit,
    backtests,
    balancing,
    base,
    deployments,
    golive,
    logs,
    overview,
    slos,
)

app_name = "console"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("login/", base.LoginView.as_view(), name="login"),
    path("logout/", base.LogoutView.as_view(), name="logout"),
    path("deployments/<int:pk>/", deployments.deployment_detail, name="deployment"),
    path(
        "deployments/<int:pk>/balancing/",
        balancing.deployment_balancing_view,
        name="deployment-balancing",
    ),
    path("deployments/<int:pk>/golive/", golive.deployment_golive, name="deployment-golive"),
    path(
        "deployments/<int:pk>/golive/run-checks/",
        golive.golive_run_checks,
        name="deployment-golive-run-checks",
    ),
    path(
        "deployments/<int:pk>/golive/loadtests/",
        golive.golive_loadtest,
        name="deployment-golive-loadtest",
    ),
    path("deployments/<int:pk>/golive/stage/", golive.golive_stage, name="deployment-golive-stage"),
    path(
        "deployments/<int:pk>/golive/override/",
        golive.golive_override,
        name="deployment-golive-override",
    ),
    path(
        "deployments/<int:pk>/golive/loadtests/<int:run_pk>/apply-capacity/",
        golive.golive_apply_capacity,
        name="deployment-golive-apply-capacity",
    ),
    path("deployments/<int:pk>/pause/", deployments.deployment_pause, name="deployment-pause"),
    path("deployments/<int:pk>/pin/", deployments.deployment_pin_view, name="deployment-pin"),
    path(
        "deployments/<int:pk>/capacity/",
        deployments.deployment_capacity_update,
        name="deployment-capacity",
    ),
    path("deployments/<int:pk>/unpin/", deployments.deployment_unpin_view, name="deployment-unpin"),
    path(
        "deployments/<int:pk>/toggles/<int:toggle_pk>/flip/",
        deployments.deployment_toggle_flip,
        name="deployment-toggle-flip",
    ),
    path(
        "deployments/<int:pk>/degradation/<int:policy_pk>/pin/",
        deployments.deployment_degradation_pin,
        name="deployment-degradation-pin",
    ),
    path(
        "deployments/<int:pk>/degradation/<int:policy_pk>/unpin/",
        deployments.deployment_degradation_unpin,
        name="deployment-degradation-unpin",
    ),
    path("slos/", slos.slo_list, name="slos"),
    path("slos/<int:pk>/", slos.slo_detail, name="slo"),
    path("audit/", audit.audit_log, name="audit"),
    path("backtest/", backtests.backtest, name="backtest"),
    path("alerts/", alerts.alerts_page, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", alerts.alert_acknowledge_view, name="alert-acknowledge"),
    path("alerts/<int:pk>/silence/", alerts.alert_silence, name="alert-silence"),
    path("alerts/silences/<int:pk>/expire/", alerts.silence_expire_view, name="silence-expire"),
    path("alerts/channels/<int:pk>/test/", alerts.channel_test, name="channel-test"),
    path("logs/", logs.logs_page, name="logs"),
    path("logs/context/", logs.log_context, name="logs-context"),
]
