"""Type stubs for the native module ``shardline._native``."""

from typing import Any, Callable, Iterable, List, Optional, Tuple, Union, Generator

__version__: str
CONFIG_KEYS: List[Tuple[str, Optional[str], str]]
"""Every configuration key: ``(key, KPL property name or None, description)``."""

class ShardlineError(Exception):
    """Base class of every error Shardline raises."""

class ConfigurationError(ShardlineError, ValueError):
    """An option is unknown or its value is invalid, or the producer could not be set up."""

class ValidationError(ShardlineError, ValueError):
    """The record can never be sent as it is."""

class QueueFullError(ShardlineError):
    """The producer's buffer is at its cap and the call could not wait (or waited too long)."""

class TimeoutError(ShardlineError, TimeoutError):  # type: ignore[misc]
    """``flush``, ``close`` or ``result`` did not finish within its timeout."""

class ClosedError(ShardlineError):
    """The producer is closed and accepts no more records."""

class DeliveryError(ShardlineError):
    """A record will not be delivered."""

    kind: Optional[str]
    """'rejected', 'expired' or 'closed'."""
    error_code: Optional[str]
    """The last error code seen, if any."""
    attempts: List[Attempt]
    """Every try that was made."""

class Attempt:
    """One try at putting a record (or the aggregate that carried it)."""

    @property
    def delay(self) -> float:
        """Seconds the record waited before this try."""
    @property
    def duration(self) -> float:
        """Seconds the request took."""
    @property
    def error_code(self) -> Optional[str]:
        """The error code of a failed try; None for a success."""
    @property
    def error_message(self) -> Optional[str]:
        """The message of a failed try."""
    @property
    def success(self) -> bool:
        """True when this try succeeded."""

class DeliveryReport:
    """A record the service stored."""

    @property
    def shard_id(self) -> Optional[str]:
        """The shard that stored it; None for Firehose."""
    @property
    def sequence_number(self) -> str:
        """The record's (or its aggregate's) sequence number; the record id for Firehose."""
    @property
    def attempts(self) -> List[Attempt]:
        """Every try, the last one the success."""
    @property
    def aggregated(self) -> bool:
        """True when it travelled inside a KPL aggregate (or a packed Firehose record)."""

class RecordFuture:
    """The pending result of one record; ``concurrent.futures.Future``-like and awaitable."""

    def result(self, timeout: Optional[float] = None) -> DeliveryReport:
        """The report, waiting up to ``timeout`` seconds (None or ``math.inf``: forever);
        raises ``DeliveryError`` on failure."""
    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The exception the record failed with, or None."""
    def done(self) -> bool:
        """True once the record is delivered or failed for good."""
    def running(self) -> bool:
        """True while the record is pending."""
    def cancelled(self) -> bool:
        """Always False."""
    def cancel(self) -> bool:
        """Always False: a queued record cannot be taken back."""
    def add_done_callback(self, fn: Callable[["RecordFuture"], object]) -> None:
        """Calls ``fn(future)`` when done (on Shardline's callback thread, or at once)."""
    def __await__(self) -> Generator[Any, None, DeliveryReport]: ...

class CallbackQueue:
    """Done callbacks on their way to the package's callback thread."""

    def __init__(self) -> None: ...
    def take(self, timeout: float) -> Optional[List[Tuple[RecordFuture, List[Callable[[RecordFuture], object]]]]]:
        """Waits for completed futures with callbacks; None once stopped."""
    def stop(self) -> None:
        """Makes ``take`` return None once empty."""

class NativeProducer:
    """The native producer; use ``shardline.Producer`` or ``shardline.FirehoseProducer``."""

    def __init__(self, options: List[Tuple[str, str]], firehose: bool, queue: CallbackQueue) -> None: ...
    def put(
        self,
        stream_name: str,
        data: Union[bytes, bytearray, memoryview, str],
        partition_key: Optional[str] = None,
        explicit_hash_key: Union[int, str, None] = None,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> RecordFuture:
        """Queues one record."""
    def put_many(
        self, stream_name: str, records: Iterable[Any], block: bool = True, timeout: Optional[float] = None
    ) -> List[RecordFuture]:
        """Queues many records."""
    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends everything buffered and waits until nothing is outstanding."""
    def close(self, timeout: Optional[float] = None) -> None:
        """Delivers what is outstanding, fails the rest, stops."""
    def outstanding(self) -> int:
        """Records accepted and not yet completed (it can trail the last
        completed future by a moment; ``flush`` returns once it is 0)."""
    def is_closed(self) -> bool:
        """True once ``close`` has started."""
    def metrics_json(self) -> str:
        """The metrics snapshot as JSON."""

def _after_fork_in_child() -> None: ...
