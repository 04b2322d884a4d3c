#!/usr/bin/env python3
"""One Python producer, one thread, one mode; prints one JSON line.

Modes (same records: 100-byte payloads, keys round-robin from 4,096
distinct UUID-shaped keys, built before the clock starts):

- ``put``: ``shardline.Producer.put`` per record, then ``flush``.
- ``put_many``: ``put_many`` with 10,000 ``(data, key)`` tuples per call.
- ``boto3_put_records``: boto3 ``put_records``, 500 records per call.
- ``boto3_agg``: ``aws_kinesis_agg.RecordAggregator`` (its default 50 KiB
  aggregates) + boto3 ``put_records`` of the aggregates, 500 per call.

records/s counts from the first call to the end of ``flush`` (delivered,
not merely accepted); ``accepted_per_s`` is when the calls returned.
Run by ``benches/run.py python``, which also samples CPU and RSS.
"""

import argparse
import json
import os
import time
import uuid


def keys(n):
    # Same shape as the Rust/Java harness keys (the exact keys don't matter
    # here; distinctness and length do).
    return [str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15 + 12345) % (1 << 128))) for i in range(n)]


def cpu():
    t = os.times()
    return t.user + t.system


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stream", default="s")
    p.add_argument("--mode", required=True,
                   choices=["put", "put_many", "boto3_put_records", "boto3_agg"])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--record-size", type=int, default=100)
    p.add_argument("--chunk", type=int, default=10_000)
    a = p.parse_args()
    payload = bytes((97 + i % 26) for i in range(a.record_size))
    ks = keys(4096)
    records = [(payload, ks[i % len(ks)]) for i in range(a.records)]
    creds = dict(aws_access_key_id="x", aws_secret_access_key="y")
    extra = {}
    c0 = cpu()
    if a.mode in ("put", "put_many"):
        import shardline
        # Lift the producer's per-shard limiter (the emulator runs without
        # limits), as shardline-load --no-rate-limit does.
        producer = shardline.Producer(endpoint_url=a.endpoint, region="us-east-1",
                                      shard_bytes_per_second=1 << 40,
                                      shard_records_per_second=1 << 40, **creds)
        # Warm up: shard map and connections, outside the clock.
        producer.put_many(a.stream, records[:1000])
        producer.flush()
        c0 = cpu()
        start = time.perf_counter()
        if a.mode == "put":
            put = producer.put
            s = a.stream
            for data, key in records:
                put(s, data, key)
        else:
            for i in range(0, len(records), a.chunk):
                producer.put_many(a.stream, records[i:i + a.chunk])
        accepted = time.perf_counter() - start
        producer.flush()
        elapsed = time.perf_counter() - start
        m = producer.metrics()
        extra["producer_user_records_put"] = m.get("UserRecordsPut")
        producer.close()
        delivered = a.records
    else:
        import boto3
        client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=a.endpoint, **creds)
        client.list_shards(StreamName=a.stream)  # warm up the connection
        c0 = cpu()
        start = time.perf_counter()
        delivered = 0
        if a.mode == "boto3_put_records":
            for i in range(0, len(records), 500):
                batch = [{"Data": d, "PartitionKey": k} for d, k in records[i:i + 500]]
                r = client.put_records(StreamName=a.stream, Records=batch)
                assert r["FailedRecordCount"] == 0
                delivered += len(batch)
        else:
            from aws_kinesis_agg.aggregator import RecordAggregator
            agg = RecordAggregator()
            pending = []
            n_in_pending = []

            def send():
                nonlocal delivered
                if pending:
                    r = client.put_records(StreamName=a.stream, Records=pending)
                    assert r["FailedRecordCount"] == 0
                    delivered += sum(n_in_pending)
                    pending.clear()
                    n_in_pending.clear()

            def add_aggregate(rec):
                pk, ehk, data = rec.get_contents()
                entry = {"Data": data, "PartitionKey": pk}
                if ehk is not None:
                    entry["ExplicitHashKey"] = ehk
                pending.append(entry)
                n_in_pending.append(rec.get_num_user_records())
                if len(pending) == 500 or sum(len(x["Data"]) for x in pending) > 4_500_000:
                    send()

            for d, k in records:
                full = agg.add_user_record(k, d)
                if full is not None:
                    add_aggregate(full)
            last = agg.clear_and_get()
            if last is not None:
                add_aggregate(last)
            send()
        accepted = time.perf_counter() - start
        elapsed = accepted
    used = cpu() - c0
    print(json.dumps({
        "harness": "python-" + a.mode, "label": a.mode, "record_size": a.record_size,
        "sent": a.records, "delivered": delivered, "failed": a.records - delivered,
        "wall_s": elapsed, "records_per_s": delivered / elapsed,
        "accepted_per_s": a.records / accepted,
        "mb_per_s": delivered * a.record_size / elapsed / 1e6,
        "cpu_s": used, **extra,
    }))


if __name__ == "__main__":
    main()
