"""The package surface: version, options, data types, exceptions, futures."""

from __future__ import annotations

import concurrent.futures
import gc
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import shardline
from shardline import exceptions

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_the_crate() -> None:
    cargo = (REPO / "Cargo.toml").read_text()
    version = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', cargo, re.M | re.S)
    assert version is not None
    assert shardline.__version__ == version.group(1)


def test_package_ships_stubs_and_py_typed() -> None:
    package = Path(shardline.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_native.pyi").exists()


def test_public_names_have_docstrings() -> None:
    for name in shardline.__all__:
        if name in ("__version__", "CONFIG_KEYS"):
            continue
        obj = getattr(shardline, name)
        assert obj.__doc__, name
    for cls in (shardline.Producer, shardline.FirehoseProducer, shardline.RecordFuture):
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            assert getattr(cls, attr).__doc__, f"{cls.__name__}.{attr}"


def test_exceptions_are_one_hierarchy_reexported() -> None:
    from shardline import _native

    for name in exceptions.__all__:
        assert getattr(exceptions, name) is getattr(_native, name) is getattr(shardline, name)
        assert issubclass(getattr(exceptions, name), shardline.ShardlineError)
    assert issubclass(shardline.ValidationError, ValueError)
    assert issubclass(shardline.ConfigurationError, ValueError)
    assert issubclass(shardline.TimeoutError, TimeoutError)
    assert issubclass(shardline.TimeoutError, concurrent.futures.TimeoutError)
    assert shardline.DeliveryError.__module__ == "shardline.exceptions"


def test_config_keys_are_listed() -> None:
    keys = {k for k, _, _ in shardline.CONFIG_KEYS}
    assert {"region", "endpoint_url", "aggregation_enabled", "record_ttl"} <= keys


def test_unknown_option_and_bad_value_are_configuration_errors() -> None:
    with pytest.raises(shardline.ConfigurationError, match="unknown configuration key"):
        shardline.Producer(region="us-east-1", no_such_option=1)
    with pytest.raises(shardline.ConfigurationError, match="aggregation_max_size"):
        shardline.Producer(region="us-east-1", aggregation_max_size="lots")
    with pytest.raises(shardline.ConfigurationError):
        shardline.Producer(region="us-east-1", endpoint_url="localhost:1")
    with pytest.raises(shardline.ConfigurationError):
        shardline.Producer(region="us-east-1", aws_access_key_id="only-the-id")


def test_options_accept_python_types_and_kpl_names(emulator) -> None:
    import datetime

    with shardline.Producer(
        **emulator.producer_options(),
        aggregation_enabled=False,
        RecordMaxBufferedTime=50,
        record_ttl=datetime.timedelta(seconds=20),
        max_connections=4,
    ) as producer:
        report = producer.put("clicks", b"x", partition_key="k").result(10)
        assert report.aggregated is False


def test_every_data_type(emulator) -> None:
    stream = emulator.create_stream(2)
    payloads = [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), "str-é"]
    with shardline.Producer(**emulator.producer_options(aggregation_enabled=False)) as producer:
        for data in payloads:
            producer.put(stream, data, partition_key="k").result(10)
    stored = [r["data"] for r in emulator.records(stream)]
    assert stored == [b"bytes", b"bytearray", b"memoryview", "str-é".encode()]


def test_missing_partition_key_gets_a_random_one(emulator) -> None:
    stream = emulator.create_stream(4)
    with shardline.Producer(**emulator.producer_options(aggregation_enabled=False)) as producer:
        futures = [producer.put(stream, b"x") for _ in range(200)]
        shards = {f.result(10).shard_id for f in futures}
    keys = {r["partition_key"] for r in emulator.records(stream)}
    assert len(keys) == 200
    assert len(shards) == 4


def test_explicit_hash_key_routes(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        first = producer.put("clicks", b"x", partition_key="k", explicit_hash_key="0")
        last = producer.put("clicks", b"x", partition_key="k", explicit_hash_key=2**128 - 1)
        assert first.result(10).shard_id == "shardId-000000000000"
        assert last.result(10).shard_id == "shardId-000000000003"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(partition_key=""), "partition key is empty"),
        (dict(partition_key="k" * 257), "257 characters"),
        (dict(partition_key="k", explicit_hash_key="12x"), "explicit hash key"),
        (dict(partition_key="k", explicit_hash_key=2**128), "explicit hash key"),
        (dict(partition_key="k", data=b"x" * (1024 * 1024 + 1)), "limit is"),
        (dict(partition_key="k", data=12), "data must be bytes"),
        (dict(stream_name="bad name!"), "stream name"),
    ],
)
def test_validation_errors_raise_at_once(emulator, kwargs, message) -> None:
    args = dict(stream_name="clicks", data=b"x")
    args.update(kwargs)
    with shardline.Producer(**emulator.producer_options()) as producer:
        with pytest.raises(shardline.ValidationError, match=message):
            producer.put(**args)
        assert producer.outstanding == 0


def test_put_many_validates_every_record_before_queueing(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        with pytest.raises(shardline.ValidationError, match="record 2"):
            producer.put_many("clicks", [b"a", (b"b", "k"), (b"c", "")])
        with pytest.raises(shardline.ValidationError, match="record 0"):
            producer.put_many("clicks", [{"partition_key": "k"}])
        assert producer.metrics()["UserRecordsReceived"] == 0


def test_put_many_accepts_tuples_dicts_and_data(emulator) -> None:
    stream = emulator.create_stream(2)
    records = [
        b"plain",
        (b"tuple", "pk-tuple"),
        ("tuple-ehk", "pk", "0"),
        {"data": b"dict", "partition_key": "pk-dict"},
        {"Data": b"boto3", "PartitionKey": "pk-boto3", "ExplicitHashKey": str(2**128 - 1)},
    ]
    with shardline.Producer(**emulator.producer_options(aggregation_enabled=False)) as producer:
        futures = producer.put_many(stream, records)
        reports = [f.result(10) for f in futures]
    assert reports[2].shard_id == "shardId-000000000000"
    assert reports[4].shard_id == "shardId-000000000001"
    stored = {r["data"]: r["partition_key"] for r in emulator.records(stream)}
    assert stored[b"tuple"] == "pk-tuple"
    assert stored[b"dict"] == "pk-dict"
    assert stored[b"boto3"] == "pk-boto3"
    assert len(stored) == 5


def test_put_many_keys_share_one_buffer_and_arrive_intact(emulator) -> None:
    # put_many copies every key of a call into one buffer and slices it:
    # multi-byte keys, generated keys and empty payloads must come out whole.
    stream = emulator.create_stream(4)
    keys = ["ключ-é-🙂-%d" % i for i in range(50)]
    records = [(b"k%d" % i, key) for i, key in enumerate(keys)]
    records += [b"random-%d" % i for i in range(200)]
    records.append((b"", "empty-data"))
    with shardline.Producer(**emulator.producer_options(aggregation_enabled=False)) as producer:
        futures = producer.put_many(stream, records)
        reports = [f.result(10) for f in futures]
    stored = {r["data"]: r for r in emulator.records(stream)}
    data = [r if isinstance(r, bytes) else r[0] for r in records]
    # Each future reports its own record (sent alone, each has its own
    # sequence number).
    assert [report.sequence_number for report in reports] == [
        stored[d]["sequence_number"] for d in data
    ]
    assert [stored[b"k%d" % i]["partition_key"] for i in range(50)] == keys
    assert stored[b""]["partition_key"] == "empty-data"
    generated = {stored[b"random-%d" % i]["partition_key"] for i in range(200)}
    assert len(generated) == 200
    assert all(re.fullmatch("[0-9a-f]{16}", k) for k in generated)
    assert len({report.shard_id for report in reports[50:250]}) == 4


def test_put_many_counts_a_generated_key_against_the_record_limit(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        # 1 MiB of data is within the limit only without a key: the random
        # 16-character key pushes it over, which put_many says at once.
        with pytest.raises(shardline.ValidationError, match="record 1: record is 1048592 bytes"):
            producer.put_many("clicks", [b"a", b"x" * (1024 * 1024)])
        assert producer.metrics()["UserRecordsReceived"] == 0


def test_one_future_outlives_the_rest_of_its_call(emulator) -> None:
    # The futures of one put_many share their cells; keeping one alive and
    # dropping the others must leave it working, callbacks included.
    seen = threading.Event()
    with shardline.Producer(**emulator.producer_options(record_max_buffered_time=60_000)) as producer:
        # The list and its other 999 futures are gone after this line.
        last = producer.put_many("clicks", [(b"x%d" % i, "k") for i in range(1000)])[-1]
        last.add_done_callback(lambda f: seen.set())
        producer.flush()
        assert seen.wait(10)
        assert last.result(0).shard_id.startswith("shardId-")


def test_queue_full(emulator) -> None:
    options = emulator.producer_options(max_buffered_records=2, record_max_buffered_time=60_000)
    with shardline.Producer(**options) as producer:
        producer.put("clicks", b"1", partition_key="k")
        producer.put("clicks", b"2", partition_key="k")
        with pytest.raises(shardline.QueueFullError):
            producer.put("clicks", b"3", partition_key="k", block=False)
        started = time.monotonic()
        with pytest.raises(shardline.QueueFullError):
            producer.put("clicks", b"3", partition_key="k", timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
        futures = producer.put_many("clicks", [b"4", b"5"], block=False)
        for f in futures:
            assert isinstance(f.exception(0), shardline.QueueFullError)
        # Blocking put waits until a flush makes room. (That flush may end
        # before the record gets in, so flush again for it.)
        timer = threading.Timer(0.2, producer.flush)
        timer.start()
        future = producer.put("clicks", b"6", partition_key="k", timeout=10)
        timer.join()
        producer.flush(10)
        future.result(0)


def test_timeouts(blackhole) -> None:
    producer = shardline.Producer(
        region="us-east-1", endpoint_url=blackhole, aws_access_key_id="a",
        aws_secret_access_key="b", request_timeout=1_000, record_ttl=60_000,
    )
    try:
        future = producer.put("clicks", b"x", partition_key="k")
        with pytest.raises(shardline.TimeoutError):
            future.result(timeout=0.2)
        with pytest.raises(concurrent.futures.TimeoutError):
            future.exception(timeout=0.1)
        assert not future.done() and future.running() and not future.cancel()
        started = time.monotonic()
        with pytest.raises(shardline.TimeoutError, match="flush timed out"):
            producer.flush(timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        with pytest.raises(shardline.TimeoutError):
            producer.close(timeout=0.2)
    # Closing failed the record that could not be delivered.
    error = future.exception(5)
    assert isinstance(error, shardline.DeliveryError) and error.kind == "closed"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_ctrl_c_interrupts_waits(blackhole) -> None:
    producer = shardline.Producer(
        region="us-east-1", endpoint_url=blackhole, aws_access_key_id="a",
        aws_secret_access_key="b", request_timeout=1_000,
    )
    try:
        future = producer.put("clicks", b"x", partition_key="k")
        for wait in (future.result, producer.flush):
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                wait()
            assert time.monotonic() - started < 2
            timer.join()
    finally:
        try:
            producer.close(timeout=0.1)
        except shardline.TimeoutError:
            pass


def test_delivery_error_has_code_and_attempts(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        future = producer.put("no-such-stream", b"x", partition_key="k")
        error = future.exception(10)
        assert isinstance(error, shardline.DeliveryError)
        assert error.error_code == "ResourceNotFoundException"
        assert error.kind == "rejected"
        assert isinstance(error.attempts, list)
        with pytest.raises(shardline.DeliveryError) as raised:
            future.result()
        assert raised.value.error_code == "ResourceNotFoundException"
        # Each call gives a new instance: a raised one carries a traceback
        # back to the caller's frame, and a cached one would tie that frame
        # to the future for good.
        again = future.exception()
        assert again is not raised.value and again.__traceback__ is None
        assert again.error_code == "ResourceNotFoundException"


def test_retries_are_reported_as_attempts(emulator) -> None:
    stream = emulator.create_stream(2)
    emulator.set_faults(internal_error_probability=0.5, seed=7)
    try:
        with shardline.Producer(**emulator.producer_options(min_backoff=5, max_backoff=20,
                                                            aggregation_enabled=False)) as producer:
            reports = [f.result(30) for f in producer.put_many(stream, [b"x"] * 50)]
    finally:
        emulator.set_faults()
    attempts = [a for r in reports for a in r.attempts]
    assert all(r.attempts[-1].success for r in reports)
    assert any(a.error_code for a in attempts), attempts


def test_closed_producer_refuses_records(emulator) -> None:
    producer = shardline.Producer(**emulator.producer_options())
    producer.put("clicks", b"x", partition_key="k")
    producer.close()
    assert producer.closed and producer.outstanding == 0
    with pytest.raises(shardline.ClosedError):
        producer.put("clicks", b"x", partition_key="k")
    with pytest.raises(shardline.ClosedError):
        producer.put_many("clicks", [b"x"])
    producer.close()  # again: nothing to do


def test_context_manager_flushes_and_closes(emulator) -> None:
    stream = emulator.create_stream(2)
    with shardline.Producer(**emulator.producer_options(record_max_buffered_time=60_000)) as producer:
        futures = producer.put_many(stream, [(b"r%d" % i, "k") for i in range(10)])
    assert producer.closed
    assert all(f.done() and f.exception() is None for f in futures)


def test_flush_returns_with_every_future_done(emulator) -> None:
    # Many records over several shards and requests, so completions arrive
    # on producer threads while flush is waiting; none may lag behind it.
    stream = emulator.create_stream(4)
    with shardline.Producer(**emulator.producer_options()) as producer:
        for _ in range(3):
            futures = producer.put_many(stream, [(b"x" * 100, "k%d" % i) for i in range(20_000)])
            futures += [producer.put(stream, b"y", partition_key="k%d" % i) for i in range(2_000)]
            producer.flush()
            assert all(f.done() for f in futures)
            assert {f.result(0).shard_id for f in futures} == {
                "shardId-00000000000%d" % i for i in range(4)
            }


def test_futures_stay_out_of_the_cyclic_gc_and_free_their_callbacks(emulator) -> None:
    # Tracking them found no cycles (they report no references to the
    # collector) and cost put_many a tenth of its time in collections.
    # Records wait for flush(), so the callback below runs on the callback
    # thread, not at once on this one.
    with shardline.Producer(**emulator.producer_options(record_max_buffered_time=60_000)) as producer:
        futures = producer.put_many("clicks", [b"x"] * 3) + [producer.put("clicks", b"y")]
        assert not any(gc.is_tracked(f) for f in futures)
        # A callback that holds its own future: a cycle until it has run,
        # then the future's references are back to what they were.
        future = futures[0]
        assert not future.done()
        before = sys.getrefcount(future)
        ran_on = []
        ran = threading.Event()

        def callback(f: shardline.RecordFuture, keep: object = future) -> None:
            ran_on.append(threading.current_thread().name)
            ran.set()

        future.add_done_callback(callback)
        del callback
        producer.flush()
        assert ran.wait(10)
        assert ran_on == ["shardline-callbacks"]
        deadline = time.monotonic() + 10
        while sys.getrefcount(future) != before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sys.getrefcount(future) == before


def test_done_callbacks_run_on_a_python_thread(emulator) -> None:
    seen = []
    done = threading.Event()
    with shardline.Producer(**emulator.producer_options()) as producer:
        future = producer.put("clicks", b"x", partition_key="k")

        def callback(f):
            seen.append((f is future, threading.current_thread().name, f.result().shard_id))
            done.set()

        future.add_done_callback(callback)
        assert done.wait(10)
        # Already done: runs at once, on this thread.
        future.add_done_callback(lambda f: seen.append(threading.current_thread().name))
    assert seen[0][0] is True and seen[0][2].startswith("shardId-")
    assert seen[0][1] in ("shardline-callbacks", threading.current_thread().name)
    assert seen[1] == threading.current_thread().name


def test_report_prints_readably(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        report = producer.put("clicks", b"x", partition_key="k").result(10)
    text = repr(report)
    assert text.startswith("DeliveryReport(shard_id='shardId-") and "attempts=1" in text
    assert "Attempt(" in repr(report.attempts[0])


def test_metrics_is_a_dict(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        producer.put_many("clicks", [b"a", b"b"])
        producer.flush(10)
        metrics = producer.metrics()
    assert metrics["UserRecordsPut"] == 2
    assert "clicks" in metrics["Streams"]


@pytest.mark.parametrize("forever", [math.inf, 1e300])
def test_infinite_and_huge_timeouts_mean_no_deadline(emulator, forever) -> None:
    # Too long for a Duration (inf) or for an Instant (1e300 s): both wait
    # as long as it takes, where they used to panic (PanicException).
    options = emulator.producer_options(max_buffered_records=2, record_max_buffered_time=60_000)
    producer = shardline.Producer(**options)
    try:
        producer.put("clicks", b"1", partition_key="k")
        producer.put("clicks", b"2", partition_key="k")
        # The buffer is full: put waits for the room a flush makes.
        timer = threading.Timer(0.2, producer.flush)
        timer.start()
        first = producer.put("clicks", b"3", partition_key="k", timeout=forever)
        timer.join()
        timer = threading.Timer(0.2, producer.flush)
        timer.start()
        futures = producer.put_many("clicks", [b"4", b"5"], timeout=forever)
        timer.join()
        producer.flush(timeout=forever)
        assert first.result(timeout=forever).shard_id.startswith("shardId-")
        assert first.exception(timeout=forever) is None
        assert [f.exception(timeout=forever) for f in futures] == [None, None]
        last = producer.put("clicks", b"6", partition_key="k")
    finally:
        producer.close(timeout=forever)
    assert producer.closed
    assert last.result(0).shard_id.startswith("shardId-")


def test_callback_queue_waits_without_deadline_for_an_infinite_timeout() -> None:
    from shardline import _native

    queue = _native.CallbackQueue()
    timer = threading.Timer(0.2, queue.stop)
    timer.start()
    started = time.monotonic()
    assert queue.take(math.inf) is None
    assert time.monotonic() - started < 5
    timer.join()


FIREHOSE_MAX_RECORD = 1000 * 1024


@pytest.mark.parametrize(
    "options, too_big, fits",
    [
        # A newline is appended to a record that does not end with one.
        (dict(firehose_newline_delimiter=True), b"x" * FIREHOSE_MAX_RECORD,
         b"x" * (FIREHOSE_MAX_RECORD - 1) + b"\n"),
        # Packing joins records with newlines: the same rule.
        (dict(firehose_pack_max_size=FIREHOSE_MAX_RECORD), b"x" * FIREHOSE_MAX_RECORD,
         b"x" * (FIREHOSE_MAX_RECORD - 1)),
        # Bytes as given.
        (dict(), b"x" * (FIREHOSE_MAX_RECORD + 1), b"x" * FIREHOSE_MAX_RECORD),
    ],
)
def test_firehose_put_many_checks_sizes_before_queueing(emulator, options, too_big, fits) -> None:
    with shardline.FirehoseProducer(**emulator.producer_options(**options)) as producer:
        with pytest.raises(shardline.ValidationError,
                           match=f"record 1: record is {FIREHOSE_MAX_RECORD + 1} bytes"):
            producer.put_many("clicks-to-s3", [b"a", too_big, b"b"])
        assert producer.outstanding == 0
        assert producer.metrics()["UserRecordsReceived"] == 0
        with pytest.raises(shardline.ValidationError, match="limit is"):
            producer.put("clicks-to-s3", too_big)
        for future in producer.put_many("clicks-to-s3", [fits, {"data": b"c", "partition_key": "k"}]):
            future.result(10)


@pytest.mark.parametrize("firehose", [False, True])
def test_put_many_raises_for_an_invalid_stream_name_as_put_does(emulator, firehose) -> None:
    cls = shardline.FirehoseProducer if firehose else shardline.Producer
    with cls(**emulator.producer_options()) as producer:
        with pytest.raises(shardline.ValidationError, match="stream name") as from_put:
            producer.put("bad name!", b"a")
        for block in (True, False):
            with pytest.raises(shardline.ValidationError, match="stream name") as from_many:
                producer.put_many("bad name!", [b"a", b"b"], block=block)
            assert str(from_many.value) == str(from_put.value)
        with pytest.raises(shardline.ValidationError, match="stream name"):
            producer.put_many("bad name!", [])
        assert producer.outstanding == 0
        assert producer.metrics()["UserRecordsReceived"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(partition_key=42), "partition_key must be a str, not int"),
        (dict(partition_key=b"k"), "partition_key must be a str, not bytes"),
        (dict(partition_key="k\ud800"), "partition_key cannot be encoded as UTF-8"),
        (dict(data="\udcff"), "data cannot be encoded as UTF-8"),
        (dict(explicit_hash_key="1\ud800"), "explicit_hash_key cannot be encoded as UTF-8"),
    ],
)
def test_bad_key_types_and_unencodable_str_are_validation_errors(emulator, kwargs, message) -> None:
    record = dict(data=b"x", partition_key="k", explicit_hash_key=None)
    record.update(kwargs)
    with shardline.Producer(**emulator.producer_options()) as producer:
        with pytest.raises(shardline.ValidationError, match=message):
            producer.put("clicks", **record)
        item = (record["data"], record["partition_key"], record["explicit_hash_key"])
        with pytest.raises(shardline.ValidationError, match=f"record 1: {message}"):
            producer.put_many("clicks", [b"ok", item])
        with pytest.raises(shardline.ValidationError, match=f"record 0: {message}"):
            producer.put_many("clicks", [dict(record)])
        assert producer.outstanding == 0
        assert producer.metrics()["UserRecordsReceived"] == 0


def test_unencodable_stream_name_is_a_validation_error(emulator) -> None:
    with shardline.Producer(**emulator.producer_options()) as producer:
        with pytest.raises(shardline.ValidationError, match="stream name cannot be encoded"):
            producer.put("clicks\ud800", b"x", partition_key="k")
        with pytest.raises(shardline.ValidationError, match="stream name cannot be encoded"):
            producer.put_many("clicks\ud800", [b"x"])


def test_options_take_whole_floats_and_refuse_the_rest(emulator) -> None:
    with shardline.Producer(
        **emulator.producer_options(), record_max_buffered_time=50.0, max_connections=4.0
    ) as producer:
        producer.put("clicks", b"x", partition_key="k").result(10)
    for value, message in [
        (0.5, "not a whole number"),
        (math.inf, "not a whole number"),
        (math.nan, "not a whole number"),
        ([100], "unsupported type list"),
        (b"100", "unsupported type bytes"),
    ]:
        with pytest.raises(shardline.ConfigurationError,
                           match=f"record_max_buffered_time: .*{message}"):
            shardline.Producer(region="us-east-1", record_max_buffered_time=value)
