"""Records put through shardline and read back: from the emulator's store,
from kinesalite with boto3 (deaggregated with aws-kinesis-agg), and from
moto's S3 behind a Firehose delivery stream."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Dict, List

import pytest

import shardline
from conftest import CREDENTIALS, boto3_client

deaggregator = pytest.importorskip("aws_kinesis_agg.deaggregator")


def _deaggregate(kinesis_records: List[Dict]) -> List[Dict]:
    """User records (data bytes, partition key) out of KPL aggregates, in
    the shape aws-kinesis-agg expects (the Lambda event shape)."""
    event_records = [
        {"kinesis": {"kinesisSchemaVersion": "1.0", "approximateArrivalTimestamp": 0,
                     "data": base64.b64encode(r["data"]).decode(),
                     "partitionKey": r["partition_key"],
                     "sequenceNumber": r["sequence_number"]}}
        for r in kinesis_records
    ]
    out = []
    for r in deaggregator.deaggregate_records(event_records):
        out.append({"data": base64.b64decode(r["kinesis"]["data"]),
                    "partition_key": r["kinesis"]["partitionKey"],
                    "sequence_number": r["kinesis"]["sequenceNumber"]})
    return out


def test_round_trip_through_the_emulator(emulator) -> None:
    stream = emulator.create_stream(4)
    sent = {f"user-{i}": f'{{"user_id": {i}}}'.encode() for i in range(2000)}
    with shardline.Producer(**emulator.producer_options()) as producer:
        futures = {key: producer.put(stream, data, partition_key=key) for key, data in sent.items()}
        futures.update(zip(
            [f"many-{i}" for i in range(2000)],
            producer.put_many(stream, [(b"many-%d" % i, f"many-{i}") for i in range(2000)]),
        ))
        reports = {key: f.result(30) for key, f in futures.items()}
    stored = emulator.records(stream)
    user_records = _deaggregate(stored)
    got = {r["partition_key"]: r["data"] for r in user_records}
    assert len(user_records) == 4000
    for key, data in sent.items():
        assert got[key] == data
    assert got["many-7"] == b"many-7"
    assert any(r.aggregated for r in reports.values())
    # Each report names the shard and sequence number that stored its record.
    stored_at = {(r["shard_id"], r["sequence_number"]) for r in stored}
    for report in reports.values():
        assert (report.shard_id, report.sequence_number) in stored_at


def _read_stream(client, stream: str) -> List[Dict]:
    records = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = client.get_records(ShardIterator=iterator, Limit=10000)
            records += [{"data": r["Data"], "partition_key": r["PartitionKey"],
                         "sequence_number": r["SequenceNumber"], "shard_id": shard["ShardId"]}
                        for r in answer["Records"]]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return records


def test_round_trip_through_kinesalite(kinesalite) -> None:
    client = boto3_client("kinesis", kinesalite)
    stream = f"s-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=stream, ShardCount=3)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1})
    sent = {f"k{i}": b"payload-%d" % i for i in range(1500)}
    with shardline.Producer(**kinesalite.producer_options()) as producer:
        futures = producer.put_many(stream, [(d, k) for k, d in sent.items()])
        reports = [f.result(30) for f in futures]
    stored = _read_stream(client, stream)
    got = {r["partition_key"]: r["data"] for r in _deaggregate(stored)}
    assert got == sent
    shards = {r["shard_id"] for r in stored}
    assert {r.shard_id for r in reports} == shards and len(shards) == 3


def test_firehose_to_moto_s3(moto) -> None:
    s3 = boto3_client("s3", moto)
    firehose = boto3_client("firehose", moto)
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    name = f"fh-{uuid.uuid4().hex[:10]}"
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
            "CompressionFormat": "UNCOMPRESSED",
        },
    )
    events = [f'{{"event": "click", "n": {i}}}' for i in range(300)]
    with shardline.FirehoseProducer(**moto.producer_options(firehose_newline_delimiter=True)) as producer:
        futures = producer.put_many(name, events[:150])
        futures += [producer.put(name, e) for e in events[150:]]
        reports = [f.result(30) for f in futures]
    assert all(r.shard_id is None and r.sequence_number for r in reports)
    body = b""
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="events/").get("Contents", []):
        body += s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    lines = body.decode().splitlines()
    assert sorted(lines) == sorted(events)


def test_firehose_through_the_emulator(emulator) -> None:
    with shardline.FirehoseProducer(**emulator.producer_options()) as producer:
        marker = uuid.uuid4().hex
        futures = producer.put_many("events-to-s3", [f"{marker}-{i}" for i in range(100)])
        for f in futures:
            f.result(30)
    delivered = [d for d in emulator.delivered("events-to-s3") if d.startswith(marker.encode())]
    assert sorted(delivered) == sorted(f"{marker}-{i}".encode() for i in range(100))
