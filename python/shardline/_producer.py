"""Producer and FirehoseProducer: the Pythonic surface over the native producer."""

from __future__ import annotations

import atexit
import datetime
import json
import weakref
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _callbacks
from ._native import ConfigurationError, NativeProducer, RecordFuture

Data = Union[bytes, bytearray, memoryview, str]
"""What a record's data may be; str is encoded as UTF-8."""

RecordLike = Union[
    Data,
    Tuple[Data, Optional[str]],
    Tuple[Data, Optional[str], Union[int, str, None]],
    Mapping[str, Any],
]
"""One item of ``put_many``: data alone (random partition key), a
``(data, partition_key[, explicit_hash_key])`` tuple, or a dict with
``data`` / ``partition_key`` / ``explicit_hash_key`` (boto3's ``Data`` /
``PartitionKey`` / ``ExplicitHashKey`` work too)."""

_live: "weakref.WeakSet[_BaseProducer]" = weakref.WeakSet()


def _option_value(key: str, value: Any) -> str:
    """The string form of an option for the core's ``Config::set``.

    Every numeric option is an integer (durations are milliseconds), so a
    float must be a whole number (``100.0``); ``0.5``, inf and NaN raise
    ``ConfigurationError``, as does a value of any other type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.timedelta):
        # Duration options are milliseconds, as in the KPL.
        return str(round(value.total_seconds() * 1000))
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigurationError(f"invalid value for {key}: {value!r} is not a whole number")
        return str(int(value))
    if isinstance(value, (int, str)):
        return str(value)
    if hasattr(value, "__fspath__"):
        return str(value.__fspath__())
    raise ConfigurationError(
        f"invalid value for {key}: unsupported type {type(value).__name__} "
        "(use str, int, float, bool, datetime.timedelta or a path)"
    )


class _BaseProducer:
    _firehose = False

    def __init__(
        self,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_session_token: Optional[str] = None,
        **options: Any,
    ) -> None:
        pairs: List[Tuple[str, str]] = []
        named = {
            "region": region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        for key, value in list(named.items()) + list(options.items()):
            if value is not None:
                pairs.append((key, _option_value(key, value)))
        self._native = NativeProducer(pairs, self._firehose, _callbacks.queue())
        _live.add(self)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends everything buffered now, without waiting for batching, and
        waits until no record is outstanding (records put meanwhile
        included). Raises ``shardline.TimeoutError`` after ``timeout``
        seconds (None or ``math.inf``: wait as long as it takes). Ctrl-C
        interrupts it."""
        self._native.flush(timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Stops accepting records, delivers what is outstanding for up to
        ``timeout`` seconds (the ``close_timeout`` option, 30 s by default,
        if None; ``math.inf``: as long as it takes), fails the rest with
        ``DeliveryError(kind='closed')`` and stops the producer's threads. Raises ``shardline.TimeoutError`` if
        some records had to be failed. Calling it again does nothing."""
        _live.discard(self)
        self._native.close(timeout)

    @property
    def outstanding(self) -> int:
        """Records accepted and not yet completed (it can trail the last
        completed future by a moment; ``flush`` returns once it is 0)."""
        return self._native.outstanding()

    @property
    def closed(self) -> bool:
        """True once ``close`` has started."""
        return self._native.is_closed()

    def metrics(self) -> Dict[str, Any]:
        """A snapshot of the producer's metrics (totals, per stream and per
        shard) as a dict, the same data as the Rust ``MetricsSnapshot``."""
        result: Dict[str, Any] = json.loads(self._native.metrics_json())
        return result

    def __enter__(self) -> "_BaseProducer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Flushes and closes (``close`` delivers what is outstanding first)."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.outstanding} outstanding"
        return f"<{type(self).__name__} {state}>"


class Producer(_BaseProducer):
    """A producer for Amazon Kinesis Data Streams.

    Records are aggregated (KPL format) per shard, batched into
    ``PutRecords`` requests, rate-limited per shard and retried, all on the
    producer's own threads; ``put`` returns at once with a future.

    Keyword arguments are the configuration options shared with the Rust
    and C APIs (``shardline.CONFIG_KEYS`` lists them; KPL property names
    such as ``RecordMaxBufferedTime`` are accepted too). Values may be str,
    int, bool, a float that is a whole number (``100.0``; every numeric
    option is an integer), a path (``os.PathLike``), or
    ``datetime.timedelta`` for durations (which are otherwise
    milliseconds). Credentials default to the standard chain (environment,
    profile files, IMDS). Raises ``ConfigurationError`` for an unknown
    option or a bad value, including one of another type or a float with a
    fraction.

    Use it as a context manager, or call ``close()``: records still
    buffered when the producer is garbage-collected get ``close_timeout``
    to go, in the background, and at interpreter exit open producers are
    closed.

    >>> with shardline.Producer(region="us-east-1") as producer:
    ...     future = producer.put("clicks", b'{"user_id": 42}', partition_key="42")
    ...     print(future.result().shard_id)
    """

    def put(
        self,
        stream_name: str,
        data: Data,
        partition_key: Optional[str] = None,
        explicit_hash_key: Union[int, str, None] = None,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> RecordFuture:
        """Queues one record and returns a future of its ``DeliveryReport``.

        ``data`` is bytes, bytearray, memoryview or str (encoded as UTF-8);
        it is copied, so the caller may reuse its buffer. Without a
        ``partition_key`` a random one is used. ``explicit_hash_key`` (int
        or decimal str) routes the record instead of the key's hash.

        When the buffer is full, waits (GIL released) for room if ``block``,
        up to ``timeout`` seconds (None or ``math.inf``: as long as it
        takes), else raises ``QueueFullError`` at once. Raises
        ``ValidationError`` for a record that can never be sent (this
        includes a ``partition_key`` that is not a str, and a str that cannot
        be encoded as UTF-8) and ``ClosedError`` after ``close``."""
        return self._native.put(stream_name, data, partition_key, explicit_hash_key, block, timeout)

    def put_many(
        self,
        stream_name: str,
        records: Iterable[RecordLike],
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> List[RecordFuture]:
        """Queues many records in one call and returns their futures, in order.

        Each record is data alone (random partition key), a ``(data,
        partition_key[, explicit_hash_key])`` tuple, or a dict with
        ``data`` / ``partition_key`` / ``explicit_hash_key`` (boto3's
        ``Data`` / ``PartitionKey`` / ``ExplicitHashKey`` work too). Every
        record is checked before any is queued: a bad one raises
        ``ValidationError`` naming its index, and an invalid stream name
        raises ``ValidationError`` as ``put`` does. Waits for room like
        ``put``; records that could not be queued in time (or at all) get
        futures that raise ``QueueFullError`` (or ``ClosedError``).

        The whole call is copied before the first record is queued, and
        that copy is outside ``max_buffered_bytes`` until its records are
        admitted: pass records in chunks (10,000 is plenty for speed)
        rather than millions at once. The records of one call share one
        buffer until each is packed for sending (aggregated, or copied out
        when sent alone, so a record held back by a throttled shard does
        not keep its call's payloads),
        and their futures share one block of memory, freed when the last
        of them is dropped (about 140 bytes a record, more for records sent
        unaggregated, whose results each hold their own sequence number)."""
        return self._native.put_many(stream_name, records, block, timeout)

    def __enter__(self) -> "Producer":
        return self


class FirehoseProducer(_BaseProducer):
    """A producer for Amazon Data Firehose (Direct PUT delivery streams).

    Records are batched into ``PutRecordBatch`` requests, rate-limited and
    retried on the producer's own threads. Takes the same options as
    ``Producer`` (``firehose_newline_delimiter=True`` appends a newline to
    each record; ``firehose_pack_max_size`` packs several records into one).

    >>> with shardline.FirehoseProducer(region="us-east-1") as producer:
    ...     producer.put("clicks-to-s3", '{"user_id": 42}\\n')
    """

    _firehose = True

    def put(
        self,
        delivery_stream_name: str,
        data: Data,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> RecordFuture:
        """Queues one record and returns a future of its ``DeliveryReport``
        (``sequence_number`` is the Firehose record id, ``shard_id`` None).
        ``data`` is bytes, bytearray, memoryview or str. Waits for room like
        ``Producer.put``."""
        return self._native.put(delivery_stream_name, data, None, None, block, timeout)

    def put_many(
        self,
        delivery_stream_name: str,
        records: Iterable[Union[Data, Mapping[str, Any]]],
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> List[RecordFuture]:
        """Queues many records (data, or dicts with ``data`` / boto3's
        ``Data``) in one call; returns their futures, in order. See
        ``Producer.put_many``: every record is checked before any is queued,
        against Firehose's limit of 1,000 KiB a record (counting the newline
        that ``firehose_newline_delimiter`` or packing adds to a record not
        ending with one)."""
        return self._native.put_many(delivery_stream_name, records, block, timeout)

    def __enter__(self) -> "FirehoseProducer":
        return self


@atexit.register
def _close_at_exit() -> None:
    # Records are only in memory: give open producers their close_timeout.
    for producer in list(_live):
        try:
            producer.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
