from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import views as core_views
from apps.logs import push as logs_push
from apps.toggles import gateway as toggles_gateway

handler400 = "apps.core.errors.bad_request"
handler403 = "apps.core.errors.permission_denied"
handler404 = "apps.core.errors.page_not_found"
handler500 = "apps.core.errors.server_error"

admin.site.site_header = "llm-controlplane"
admin.site.site_title = "llm-controlplane"
admin.site.index_title = "Inventory and control"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("api/v1/", include("controlplane.api_urls")),
    path("loki/api/v1/push", logs_push.loki_push, name="loki-push"),
    path("v1/logs", logs_push.otlp_logs, name="otlp-logs"),
    path("otlp/v1/logs", logs_push.otlp_logs, name="otlp-logs-prefixed"),
    path("loki/api/v1/", include("apps.logs.loki_read")),
    path("ofrep/v1/evaluate/flags", toggles_gateway.ofrep_evaluate_flags, name="ofrep-flags"),
    path(
        "ofrep/v1/evaluate/flags/<str:key>",
        toggles_gateway.ofrep_evaluate_flag,
        name="ofrep-flag",
    ),
    path("toggles/v1/snapshot", toggles_gateway.toggles_snapshot, name="toggles-snapshot"),
    path("toggles/v1/changes", toggles_gateway.toggles_changes, name="toggles-changes"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    path("console/", include("apps.console.urls")),
    path("", core_views.index, name="index"),
]
