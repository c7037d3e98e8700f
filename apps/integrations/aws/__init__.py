from .client import (
    AccessKey,
    AutoScalingClient,
    AutoScalingGroupInfo,
    AutoScalingInstanceInfo,
    AwsError,
    CredentialsSource,
    Ec2Client,
    Ec2InstanceInfo,
    aws_error_from_exception,
    build_autoscaling_client,
    build_session,
    session_client,
)

__all__ = [
    "AccessKey",
    "AutoScalingClient",
    "AutoScalingGroupInfo",
    "AutoScalingInstanceInfo",
    "AwsError",
    "CredentialsSource",
    "Ec2Client",
    "Ec2InstanceInfo",
    "aws_error_from_exception",
    "build_autoscaling_client",
    "build_session",
    "session_client",
]
