"""Shardline: an in-process producer for Amazon Kinesis Data Streams and
Amazon Data Firehose, with a Rust core.

``put`` returns at once with a future; records are aggregated (KPL format),
batched per shard, rate-limited and retried on the producer's own threads,
which never run Python code. A future resolves to a ``DeliveryReport`` or
raises ``DeliveryError``; it works like ``concurrent.futures.Future`` and can
be awaited from asyncio.

>>> import shardline
>>> with shardline.Producer(region="us-east-1") as producer:
...     futures = producer.put_many("clicks", [b"a", b"b", b"c"])
...     print([f.result().shard_id for f in futures])
"""

from ._native import CONFIG_KEYS, Attempt, DeliveryReport, RecordFuture
from ._native import __version__ as __version__
from ._producer import FirehoseProducer, Producer
from .exceptions import (
    ClosedError,
    ConfigurationError,
    DeliveryError,
    QueueFullError,
    ShardlineError,
    TimeoutError,
    ValidationError,
)

__all__ = [
    "__version__",
    "Producer",
    "FirehoseProducer",
    "RecordFuture",
    "DeliveryReport",
    "Attempt",
    "CONFIG_KEYS",
    "ShardlineError",
    "ConfigurationError",
    "ValidationError",
    "QueueFullError",
    "TimeoutError",
    "ClosedError",
    "DeliveryError",
]
