"""The product's URLs plus the minimal DRF view that ``bench/api.py`` measures against.

The view goes through the same middleware, token authentication, permission check and JSON
renderer as every API view, and does nothing else: it answers a small dict without touching
the database beyond authentication.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.urls import urlpatterns as product_urlpatterns

BASELINE_PATH = "bench/baseline/"


class BaselineView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "user": request.user.get_username()})


urlpatterns = [
    path(BASELINE_PATH, BaselineView.as_view(), name="bench-baseline"),
    *product_urlpatterns,
]
