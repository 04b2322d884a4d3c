"""Upload the lines of files to a Firehose delivery stream.

This replaces the usual ``put_record_batch`` script::

    batch = []
    for line in lines:
        batch.append({"Data": line})
        if len(batch) == 500:
            answer = firehose.put_record_batch(DeliveryStreamName=name, Records=batch)
            # ...then find the failed entries, back off, resend them, and
            # keep under 4 MiB per call and the stream's throughput...
            batch = []

``put_many`` takes any number of records in one call; batching into
``PutRecordBatch`` requests (500 records / 4 MiB), the delivery stream's
rate limits and retries of failed entries are the producer's job. Each
future tells whether its record was delivered.

    python firehose_batch_upload.py --delivery-stream logs-to-s3 access.log [more files]
        [--endpoint-url http://127.0.0.1:4567] [--chunk 10000] [--pack 262144]
        [--records-per-second N] [--bytes-per-second N]

The producer paces the delivery stream to its quota, by default the
smallest regional one (1,000 records/s, 1 MiB/s): pass yours. ``--pack``
puts many lines into one Firehose record (the S3 object is the same).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

import shardline


def read_lines(paths: List[str]) -> Iterator[bytes]:
    for path in paths:
        with (sys.stdin.buffer if path == "-" else open(path, "rb")) as f:
            for line in f:
                yield line if line.endswith(b"\n") else line + b"\n"


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="files to upload ('-' for stdin)")
    parser.add_argument("--delivery-stream", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--endpoint-url", help="e.g. a local emulator")
    parser.add_argument("--chunk", type=int, default=10_000, help="lines per put_many call")
    parser.add_argument("--pack", type=int, default=0,
                        help="pack lines into Firehose records of up to this many bytes")
    parser.add_argument("--records-per-second", type=int, help="the stream's records/s quota")
    parser.add_argument("--bytes-per-second", type=int, help="the stream's bytes/s quota")
    args = parser.parse_args(argv)

    options: Dict[str, Any] = {"region": args.region}
    if args.endpoint_url:
        options.update(endpoint_url=args.endpoint_url, aws_access_key_id="local",
                       aws_secret_access_key="local")

    if args.pack:
        options["firehose_pack_max_size"] = args.pack
    if args.records_per_second:
        options["firehose_records_per_second"] = args.records_per_second
    if args.bytes_per_second:
        options["firehose_bytes_per_second"] = args.bytes_per_second

    sent = failed = 0
    started = time.perf_counter()
    with shardline.FirehoseProducer(**options) as producer:
        lines = read_lines(args.files)
        futures: List[shardline.RecordFuture] = []
        while True:
            chunk = list(itertools.islice(lines, args.chunk))
            if not chunk:
                break
            futures += producer.put_many(args.delivery_stream, chunk)
            sent += len(chunk)
        producer.flush()
        for future in futures:
            error = future.exception()
            if error is not None:
                failed += 1
                if failed <= 5:
                    print(f"not delivered: {error}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"{sent - failed} of {sent} lines delivered in {elapsed:.2f} s "
          f"({sent / max(elapsed, 1e-9):,.0f} lines/s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
