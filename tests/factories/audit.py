from __future__ import annotations

import factory

from apps.audit.models import AuditAction, AuditEntry

from .accounts import TeamFactory


class AuditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEntry

    actor = None
    actor_repr = "system"
    team = factory.SubFactory(TeamFactory)
    action = AuditAction.UPDATE
    object_type = "inventory.deployment"
    object_id = factory.Sequence(str)
    object_repr = factory.LazyAttribute(lambda e: f"deployment {e.object_id}")
    changes = factory.LazyFunction(lambda: {"max_replicas": [4, 8]})
    source = "api"
