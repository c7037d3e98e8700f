"""URLs of the web console, mounted at /console/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment"),
    path("deployments/<int:pk>/pause/", views.deployment_pause, name="deployment-pause"),
    path("deployments/<int:pk>/pin/", views.deployment_pin_view, name="deployment-pin"),
    path("deployments/<int:pk>/unpin/", views.deployment_unpin_view, name="deployment-unpin"),
]
