"""Drives the emulator with boto3 (a client nobody here wrote).

Usage: boto3_client.py SCENARIO ENDPOINT [PEM]
Prints one JSON object with what it observed; the Rust test asserts on it.
"""
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def clients(endpoint, verify=None):
    # Client-side validation off, so the server's answers are what we see.
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5,
                    read_timeout=10, parameter_validation=False)
    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", config=config,
                  aws_access_key_id="test", aws_secret_access_key="test")
    if verify is not None:
        kwargs["verify"] = verify
    return boto3.client("kinesis", **kwargs), boto3.client("firehose", **kwargs)


def code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def read_shard(kinesis, stream, shard_id):
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    data, children = [], []
    while it:
        out = kinesis.get_records(ShardIterator=it, Limit=100)
        data += [r["Data"].decode() for r in out["Records"]]
        if not out["Records"] and out.get("NextShardIterator"):
            break
        it = out.get("NextShardIterator")
        children = [c["ShardId"] for c in out.get("ChildShards", [])]
    return data, children


def roundtrip(endpoint, verify=None):
    kinesis, firehose = clients(endpoint, verify)
    kinesis.create_stream(StreamName="py", ShardCount=2)
    out = kinesis.put_records(StreamName="py", Records=[
        {"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(50)])
    single = kinesis.put_record(StreamName="py", Data=b"single", PartitionKey="x",
                                ExplicitHashKey="0")
    shards = kinesis.list_shards(StreamName="py")["Shards"]
    read = []
    for s in shards:
        read += read_shard(kinesis, "py", s["ShardId"])[0]
    firehose.create_delivery_stream(DeliveryStreamName="pyd")
    batch = firehose.put_record_batch(DeliveryStreamName="pyd",
                                      Records=[{"Data": b"a\n"}, {"Data": b"b\n"}])
    firehose.put_record(DeliveryStreamName="pyd", Record={"Data": b"c\n"})
    return {
        "failed": out["FailedRecordCount"],
        "single_shard": single["ShardId"],
        "shards": len(shards),
        "read": sorted(read),
        "streams": kinesis.list_streams()["StreamNames"],
        "firehose_failed": batch["FailedPutCount"],
        "delivery_streams": firehose.list_delivery_streams()["DeliveryStreamNames"],
    }


def validation(endpoint):
    kinesis, firehose = clients(endpoint)
    kinesis.create_stream(StreamName="v", ShardCount=1)
    return {
        "too_many": code(lambda: kinesis.put_records(StreamName="v", Records=[
            {"Data": b"x", "PartitionKey": "k"}] * 501)),
        "empty_key": code(lambda: kinesis.put_record(StreamName="v", Data=b"x", PartitionKey="")),
        "long_key": code(lambda: kinesis.put_record(StreamName="v", Data=b"x", PartitionKey="k" * 257)),
        "bad_hash_key": code(lambda: kinesis.put_record(StreamName="v", Data=b"x", PartitionKey="k",
                                                        ExplicitHashKey="abc")),
        "hash_key_range": code(lambda: kinesis.put_record(StreamName="v", Data=b"x", PartitionKey="k",
                                                          ExplicitHashKey=str(2 ** 128))),
        "big_record": code(lambda: kinesis.put_record(StreamName="v", Data=b"x" * (1024 * 1024 + 1),
                                                      PartitionKey="k")),
        "big_request": code(lambda: kinesis.put_records(StreamName="v", Records=[
            {"Data": b"x" * 1_000_000, "PartitionKey": "k"}] * 6)),
        "unknown_stream": code(lambda: kinesis.put_record(StreamName="nope", Data=b"x", PartitionKey="k")),
        "unknown_delivery_stream": code(lambda: firehose.put_record(DeliveryStreamName="nope",
                                                                    Record={"Data": b"x"})),
    }


def throttling(endpoint):
    # Run against an emulator whose shard quota is 4,096 bytes per second, so
    # what is throttled depends only on sizes, not on how fast boto3 runs on a
    # loaded machine: one request is admitted at one instant.
    kinesis, _ = clients(endpoint)
    kinesis.create_stream(StreamName="t", ShardCount=1)
    # 1,000 data bytes plus a 2-byte key: four fit in 4,096, the fifth does not.
    out = kinesis.put_records(StreamName="t", Records=[
        {"Data": b"x" * 1000, "PartitionKey": f"k{i}"} for i in range(10)])
    codes = [r.get("ErrorCode") for r in out["Records"]]
    # A record larger than the whole quota is throttled however long it waits.
    single = code(lambda: kinesis.put_record(StreamName="t", Data=b"x" * 8192, PartitionKey="k"))
    return {"failed": out["FailedRecordCount"], "codes": codes, "put_record": single}


def resharding(endpoint):
    kinesis, _ = clients(endpoint)
    kinesis.create_stream(StreamName="r", ShardCount=1)
    kinesis.put_record(StreamName="r", Data=b"old", PartitionKey="k")
    kinesis.split_shard(StreamName="r", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2 ** 127))
    kinesis.put_record(StreamName="r", Data=b"new", PartitionKey="k")
    shards = kinesis.list_shards(StreamName="r")["Shards"]
    parent = read_shard(kinesis, "r", "shardId-000000000000")
    kinesis.update_shard_count(StreamName="r", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    summary = kinesis.describe_stream_summary(StreamName="r")["StreamDescriptionSummary"]
    return {
        "shards": [[s["ShardId"], s.get("ParentShardId"),
                    "EndingSequenceNumber" in s["SequenceNumberRange"]] for s in shards],
        "parent_data": parent[0],
        "parent_children": parent[1],
        "open_after_update": summary["OpenShardCount"],
    }


def faults(endpoint):
    kinesis, _ = clients(endpoint)
    out = kinesis.put_records(StreamName="f", Records=[
        {"Data": b"x", "PartitionKey": f"k{i}"} for i in range(10)])
    return {"failed": out["FailedRecordCount"],
            "codes": sorted({r.get("ErrorCode", "OK") for r in out["Records"]})}


def expired(endpoint):
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1", config=config,
                           aws_access_key_id="AKIDEXPIRED", aws_secret_access_key="x")
    return {"code": code(lambda: kinesis.list_streams())}


def sts(endpoint):
    # The KPL asks STS who it is before producing; botocore parses the XML.
    client = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="AKIDSTS", aws_secret_access_key="x")
    identity = client.get_caller_identity()
    refused = code(lambda: client.get_session_token())
    return {"account": identity["Account"], "user_id": identity["UserId"],
            "arn": identity["Arn"], "other_action": refused}


def main():
    scenario, endpoint = sys.argv[1], sys.argv[2]
    if scenario == "tls":
        result = roundtrip(endpoint, verify=sys.argv[3])
    else:
        result = globals()[scenario](endpoint)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
