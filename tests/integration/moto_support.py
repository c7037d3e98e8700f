"""moto's AWS API server prepared for the Auto Scaling tests: empty state, one GPU launch
template and one group of 1 to 5 instances with 2 desired."""

from __future__ import annotations

import boto3
import requests


def moto_reset_with_group(moto_url: str, *, region: str, group: str, template: str) -> None:
    requests.post(f"{moto_url}/moto-api/reset", timeout=30).raise_for_status()
    boto3.client("ec2", region_name=region, endpoint_url=moto_url).create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge"},
    )
    autoscaling = boto3.client("autoscaling", region_name=region, endpoint_url=moto_url)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        MinSize=1,
        MaxSize=5,
        DesiredCapacity=2,
        AvailabilityZones=[f"{region}a"],
    )
