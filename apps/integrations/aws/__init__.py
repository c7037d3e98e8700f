from .client import (
    AutoScalingClient,
    AutoScalingGroupInfo,
    AwsError,
    CredentialsSource,
    aws_error_from_exception,
    build_autoscaling_client,
    build_session,
)

__all__ = [
    "AutoScalingClient",
    "AutoScalingGroupInfo",
    "AwsError",
    "CredentialsSource",
    "aws_error_from_exception",
    "build_autoscaling_client",
    "build_session",
]
