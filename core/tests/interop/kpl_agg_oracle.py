#!/usr/bin/env python3
"""Interop oracle: runs the reference `aws-kinesis-agg` package on Kinesis
records for Shardline's tests (core/tests/interop_aws_kinesis_agg.rs).

    kpl_agg_oracle.py deaggregate IN.json OUT.json
    kpl_agg_oracle.py aggregate   IN.json OUT.json

Bytes travel as hex in the JSON files (no base64 dependency on the Rust
side); this script converts to and from the base64 that the Lambda-style
records of `aws_kinesis_agg` carry.

deaggregate: IN  = {"records": [{"partitionKey", "explicitHashKey"|null, "data"}]}
             OUT = {"results": [[{"partitionKey", "explicitHashKey"|null, "data",
                                  "aggregated"}], ...]}   one list per input record
aggregate:   IN  = {"max_size": int, "records": [... as above ...]}
             OUT = {"aggregates": [{"partitionKey", "explicitHashKey"|null, "data",
                                    "user_record_count", "reported_size"}]}

`aws_kinesis_agg.deaggregator` yields zero records (printing to stderr) when
an aggregate is malformed, so callers must compare counts and treat any
stderr output as a failure.
"""

import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records


def lambda_record(index, record):
    kinesis = {
        "kinesisSchemaVersion": "1.0",
        "sequenceNumber": str(index),
        "approximateArrivalTimestamp": 0,
        "partitionKey": record["partitionKey"],
        "data": base64.b64encode(bytes.fromhex(record["data"])).decode("ascii"),
    }
    if record.get("explicitHashKey") is not None:
        kinesis["explicitHashKey"] = record["explicitHashKey"]
    return {"kinesis": kinesis}


def deaggregate(request):
    results = []
    for index, record in enumerate(request["records"]):
        user_records = []
        for user_record in deaggregate_records([lambda_record(index, record)]):
            kinesis = user_record["kinesis"]
            user_records.append(
                {
                    "partitionKey": kinesis["partitionKey"],
                    "explicitHashKey": kinesis.get("explicitHashKey"),
                    "data": base64.b64decode(kinesis["data"]).hex(),
                    "aggregated": bool(kinesis.get("aggregated", False)),
                }
            )
        results.append(user_records)
    return {"results": results}


def describe(agg_record):
    partition_key, explicit_hash_key, data = agg_record.get_contents()
    return {
        "partitionKey": partition_key,
        "explicitHashKey": explicit_hash_key,
        "data": data.hex(),
        "user_record_count": agg_record.get_num_user_records(),
        "reported_size": agg_record.get_size_bytes(),
    }


def aggregate(request):
    aggregator = RecordAggregator(max_size=request["max_size"])
    aggregates = []
    for record in request["records"]:
        full = aggregator.add_user_record(
            record["partitionKey"],
            bytes.fromhex(record["data"]),
            record.get("explicitHashKey"),
        )
        if full is not None:
            aggregates.append(describe(full))
    last = aggregator.clear_and_get()
    if last is not None:
        aggregates.append(describe(last))
    return {"aggregates": aggregates}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("deaggregate", "aggregate"):
        sys.exit(__doc__)
    mode, in_path, out_path = sys.argv[1:]
    with open(in_path, encoding="utf-8") as f:
        request = json.load(f)
    response = deaggregate(request) if mode == "deaggregate" else aggregate(request)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(response, f)


if __name__ == "__main__":
    main()
