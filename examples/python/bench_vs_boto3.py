"""Records per second from one Python thread: shardline ``put``, ``put_many``
and boto3 ``put_records`` (500 records a call), against the same endpoint.

    python bench_vs_boto3.py --endpoint-url http://127.0.0.1:PORT --stream clicks \\
        [--count 300000] [--size 100]

Start the project's emulator without limits for a local measurement::

    target/release/shardline-emulator --port 0 --stream clicks:8 --no-limits

"accepted" is the rate at which calls return (what the producing thread
sees); "delivered" includes the final ``flush``.
"""

from __future__ import annotations

import argparse
import time

import shardline


def bench_put(producer: shardline.Producer, stream: str, payload: bytes, count: int):
    put = producer.put
    started = time.perf_counter()
    for i in range(count):
        put(stream, payload)
    accepted = time.perf_counter() - started
    producer.flush()
    return count / accepted, count / (time.perf_counter() - started)


def bench_put_many(producer: shardline.Producer, stream: str, payload: bytes, count: int,
                   chunk: int):
    records = [payload] * chunk
    started = time.perf_counter()
    for _ in range(count // chunk):
        producer.put_many(stream, records)
    accepted = time.perf_counter() - started
    producer.flush()
    n = count // chunk * chunk
    return n / accepted, n / (time.perf_counter() - started)


def bench_boto3(endpoint: str, region: str, stream: str, payload: bytes, count: int) -> float:
    import boto3

    client = boto3.client("kinesis", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id="local", aws_secret_access_key="local")
    batch = [{"Data": payload, "PartitionKey": str(i)} for i in range(500)]
    started = time.perf_counter()
    sent = 0
    while sent < count:
        answer = client.put_records(StreamName=stream, Records=batch)
        assert answer["FailedRecordCount"] == 0, answer["FailedRecordCount"]
        sent += len(batch)
    return sent / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--stream", default="clicks")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--size", type=int, default=100, help="payload bytes")
    parser.add_argument("--chunk", type=int, default=10_000, help="records per put_many")
    parser.add_argument("--boto3-count", type=int, default=50_000)
    args = parser.parse_args()
    payload = b"x" * args.size

    options = dict(region=args.region, endpoint_url=args.endpoint_url,
                   aws_access_key_id="local", aws_secret_access_key="local")
    with shardline.Producer(**options) as producer:
        bench_put(producer, args.stream, payload, 10_000)  # warm up: shard map, connections
        put_acc, put_del = bench_put(producer, args.stream, payload, args.count)
        many_acc, many_del = bench_put_many(producer, args.stream, payload, args.count, args.chunk)
    boto = bench_boto3(args.endpoint_url, args.region, args.stream, payload, args.boto3_count)
    print(f"payload {args.size} B, {args.count} records, one thread")
    print(f"shardline put:        accepted {put_acc:>12,.0f}/s  delivered {put_del:>12,.0f}/s"
          f"  ({put_acc / boto:.0f}x boto3)")
    print(f"shardline put_many:   accepted {many_acc:>12,.0f}/s  delivered {many_del:>12,.0f}/s"
          f"  ({many_acc / boto:.0f}x boto3)")
    print(f"boto3 put_records:    {boto:>12,.0f}/s")


if __name__ == "__main__":
    main()
