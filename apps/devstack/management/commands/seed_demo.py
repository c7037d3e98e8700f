from typing import Any

from django.core.management.base import BaseCommand

from apps.devstack.demo import demo_inventory_ensure


class Command(BaseCommand):
    help = "Create the demo team, model and simulated deployments (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        deployments = demo_inventory_ensure()
        self.stdout.write(f"demo inventory: {len(deployments)} deployments")
