"""The web console: server-rendered pages over the domain apps (top layer; nothing imports
it)."""

from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "apps.console"
    label = "console"
    verbose_name = "Console"
