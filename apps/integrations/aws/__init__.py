from .client import (
    AccessKey,
    AutoScalingClient,
    AutoScalingGroupInfo,
    AwsError,
    CredentialsSource,
    aws_error_from_exception,
    build_autoscaling_client,
    build_session,
)

__all__ = [
    "AccessKey",
    "AutoScalingClient",
    "AutoScalingGroupInfo",
    "AwsError",
    "CredentialsSource",
    "aws_error_from_exception",
    "build_autoscaling_client",
    "build_session",
]
