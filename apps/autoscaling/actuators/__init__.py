"""Actuators: set the replica count of a scale target behind one interface.

The interface, its error and the retrying helper are re-exported here. The
implementations live in their own modules so that importing this package does not pull
in the Kubernetes and AWS SDKs:

* :mod:`.kubernetes` — ``KubernetesActuator`` (``k8s-deployment``, ``k8s-statefulset``)
* :mod:`.aws_asg` — ``AutoScalingGroupActuator`` (``aws-asg``)
* :mod:`.simulated` — ``SimulatedActuator`` (``simulated``, the fleet simulator)
"""

from .base import (
    Actuator,
    ActuatorError,
    ScaleDownPreparer,
    ScaleStatus,
    ScaleTarget,
    TargetKind,
    apply_with_retry,
)

__all__ = [
    "Actuator",
    "ActuatorError",
    "ScaleDownPreparer",
    "ScaleStatus",
    "ScaleTarget",
    "TargetKind",
    "apply_with_retry",
]
