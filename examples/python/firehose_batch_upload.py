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
        [--endpoint-url http://127.0.0.1:4567] [--chunk 10000]
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
    args = parser.parse_args(argv)

    options: Dict[str, Any] = {"region": args.region}
    if args.endpoint_url:
        options.update(endpoint_url=args.endpoint_url, aws_access_key_id="local",
                       aws_secret_access_key="local")

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
