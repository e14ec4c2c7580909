"""The moto server fixture really is a separate process that boto3 can reach."""

import boto3


def test_moto_server_answers_boto3(moto_server):
    ec2 = boto3.client("ec2", region_name="us-west-2", endpoint_url=moto_server.url)
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    assert moto_server.process.poll() is None
