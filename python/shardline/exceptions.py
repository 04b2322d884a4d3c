"""The exceptions Shardline raises, defined once in the native module.

::

    ShardlineError                 base of all of them
    ├── ConfigurationError         (also ValueError) unknown option, bad value, setup failed
    ├── ValidationError            (also ValueError) the record can never be sent as it is
    ├── QueueFullError             the buffer is at its cap and the call could not wait
    ├── TimeoutError               (also the built-in TimeoutError and
    │                              concurrent.futures.TimeoutError) flush/close/result timed out
    ├── ClosedError                the producer is closed
    └── DeliveryError              a record was not delivered: .kind, .error_code, .attempts
"""

from ._native import (
    ClosedError,
    ConfigurationError,
    DeliveryError,
    QueueFullError,
    ShardlineError,
    TimeoutError,
    ValidationError,
)

__all__ = [
    "ShardlineError",
    "ConfigurationError",
    "ValidationError",
    "QueueFullError",
    "TimeoutError",
    "ClosedError",
    "DeliveryError",
]
