"""A store's refusal keeps its own error code (issue 17): a wrong access key and a wrong secret
are told apart (InvalidAccessKeyId vs SignatureDoesNotMatch) where the user reads the error,
although the first request, a HEAD of the bucket, gets an answer without a body."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from cli.bench.s3server import S3Server, start_s3_server
from tests.cli.shoal_cli import shoal


@pytest.fixture(scope="module")
def keyed_s3() -> Iterator[tuple[S3Server, str, str]]:
    """A moto server that checks signatures: (server, access key, secret key) of its user."""
    server = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})  # user, key, policy
    try:
        iam = boto3.client(
            "iam", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )  # fmt: skip
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = json.dumps({"Version": "2012-10-17", "Statement": [allow]})
        iam.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=policy)
        yield server, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        server.stop()


def test_access_denied_keeps_the_store_code(
    keyed_s3: tuple[S3Server, str, str], tmp_path: Path
) -> None:
    server, access, secret = keyed_s3
    bucket = f"codes-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=access, aws_secret_access_key=secret,
    ).create_bucket(Bucket=bucket)  # fmt: skip
    home = tmp_path / "home"
    opts = ["-o", f"endpoint={server.endpoint}", "-o", "path_style=true", "-o", "region=us-east-1"]
    cases = [("AKIANOSUCHKEY0000000", secret, "InvalidAccessKeyId"),
             (access, "not-the-secret-key", "SignatureDoesNotMatch")]  # fmt: skip
    for key_id, key, code in cases:
        refused = shoal(
            "fs", "mount", "/s3", f"s3://{bucket}/", *opts,
            "-o", f"access_key={key_id}", "-o", f"secret_key={key}", home=home, expect=1,
        )  # fmt: skip
        (line,) = [x for x in refused.stderr.splitlines() if "error:" in x]
        assert f"access denied ({code})" in line, line
    shoal("fs", "mount", "/s3", f"s3://{bucket}/", *opts,
          "-o", f"access_key={access}", "-o", f"secret_key={secret}", home=home)  # fmt: skip
