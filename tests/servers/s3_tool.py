"""Small boto3 helper for tests against moto's S3 (run with <repo>/.venv/bin/python).

    s3_tool.py create-bucket ENDPOINT BUCKET
    s3_tool.py dump ENDPOINT BUCKET     -> JSON {"objects": [{"key", "size", "data_b64"}]}
"""

import base64
import json
import sys

import boto3


def s3(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDSHARDLINETEST",
        aws_secret_access_key="shardline-test-secret",
    )


def main(argv: list[str]) -> int:
    cmd, endpoint, bucket = argv
    client = s3(endpoint)
    if cmd == "create-bucket":
        client.create_bucket(Bucket=bucket)
        print(json.dumps({"created": bucket}))
    elif cmd == "dump":
        objects = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                objects.append(
                    {"key": obj["Key"], "size": obj["Size"], "data_b64": base64.b64encode(body).decode()}
                )
        print(json.dumps({"objects": objects}))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
