"""Emit JSON click events to a Kinesis stream and a Firehose delivery stream.

This replaces the usual boto3 loop::

    kinesis = boto3.client("kinesis")
    firehose = boto3.client("firehose")
    while True:
        event = make_event()
        kinesis.put_record(StreamName="clicks", Data=json.dumps(event),
                           PartitionKey=str(event["user_id"]))
        firehose.put_record(DeliveryStreamName="clicks-to-s3",
                            Record={"Data": json.dumps(event) + "\\n"})

Each boto3 call is one HTTP request; here ``put`` returns at once, and the
producers aggregate, batch, rate-limit and retry in the background.

    python clickstream_generator.py --stream clicks --delivery-stream clicks-to-s3 \\
        --count 200000 [--endpoint-url http://127.0.0.1:4567] [--region us-east-1]

Prints the rate at which events were accepted and, after ``flush``, the
rate at which they were delivered.

Firehose quotas: the producer paces each delivery stream to its quota, and
by default assumes the smallest regional Direct PUT quota (1,000 records/s,
1 MiB/s). Pass your stream's quota (``--firehose-records-per-second``,
``--firehose-bytes-per-second``); packing several events into one Firehose
record (``--firehose-pack``, on by default: the S3 object is the same
newline-delimited JSON) makes the records/s quota go much further.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from typing import Any, Dict, Optional

import shardline

EVENTS = ["page_view", "click", "add_to_cart", "purchase", "search", "share"]
DEVICES = [("mobile", "ios", "17.5"), ("mobile", "android", "14"), ("desktop", "windows", "11"),
           ("desktop", "macos", "14.5"), ("tablet", "ipados", "17.5")]


def make_event(rng: random.Random) -> Dict[str, Any]:
    device_type, device_os, device_os_version = rng.choice(DEVICES)
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "user_id": rng.randrange(1, 1_000_000),
        "session_id": rng.randrange(1, 10_000_000),
        "device_type": device_type,
        "device_os": device_os,
        "device_os_version": device_os_version,
        "event": rng.choice(EVENTS),
        "interest_id": rng.randrange(1, 500),
        "price": round(rng.uniform(1, 500), 2),
        "timestamp": time.time(),
    }


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", help="Kinesis stream name")
    parser.add_argument("--delivery-stream", help="Firehose delivery stream name")
    parser.add_argument("--count", type=int, default=100_000, help="events to send")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--endpoint-url", help="e.g. a local emulator")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--firehose-records-per-second", type=int)
    parser.add_argument("--firehose-bytes-per-second", type=int)
    parser.add_argument("--firehose-pack", type=int, default=256 * 1024,
                        help="pack events into Firehose records of up to this many bytes (0: off)")
    args = parser.parse_args(argv)
    if not args.stream and not args.delivery_stream:
        parser.error("give --stream and/or --delivery-stream")

    options: Dict[str, Any] = {"region": args.region}
    if args.endpoint_url:
        # Local servers accept any credentials; real AWS uses the default chain.
        options.update(endpoint_url=args.endpoint_url, aws_access_key_id="local",
                       aws_secret_access_key="local")
    kinesis = shardline.Producer(**options) if args.stream else None
    firehose_options = dict(options, firehose_newline_delimiter=True,
                            firehose_pack_max_size=args.firehose_pack)
    if args.firehose_records_per_second:
        firehose_options["firehose_records_per_second"] = args.firehose_records_per_second
    if args.firehose_bytes_per_second:
        firehose_options["firehose_bytes_per_second"] = args.firehose_bytes_per_second
    firehose = shardline.FirehoseProducer(**firehose_options) if args.delivery_stream else None

    rng = random.Random(args.seed)
    failures = []
    started = time.perf_counter()
    for _ in range(args.count):
        event = make_event(rng)
        line = json.dumps(event, separators=(",", ":"))
        if kinesis:
            kinesis.put(args.stream, line, partition_key=str(event["user_id"]))
        if firehose:
            firehose.put(args.delivery_stream, line)
    accepted = time.perf_counter() - started

    for name, producer in (("kinesis", kinesis), ("firehose", firehose)):
        if producer is None:
            continue
        producer.flush()
        metrics = producer.metrics()
        if metrics["UserRecordsFailed"]:
            failures.append(f"{name}: {metrics['UserRecordsFailed']} failed "
                            f"({metrics['UserRecordExpired']} expired), "
                            f"errors {metrics['ErrorsByCode']}")
        producer.close()
    delivered = time.perf_counter() - started

    sinks = sum(p is not None for p in (kinesis, firehose))
    print(f"{args.count} events x {sinks} destination(s): accepted in {accepted:.2f} s "
          f"({args.count / accepted:,.0f} events/s), delivered in {delivered:.2f} s "
          f"({args.count / delivered:,.0f} events/s)")
    for failure in failures:
        print(failure)


if __name__ == "__main__":
    main()
