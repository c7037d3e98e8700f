from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist

from .models import Deployment, DeploymentReadiness


def deployment_readiness(*, deployment: Deployment) -> DeploymentReadiness:
    """The deployment's checklist; an unsaved all-unchecked one if none was ever written."""
    try:
        return deployment.readiness
    except ObjectDoesNotExist:
        return DeploymentReadiness(deployment=deployment)
