"""Many threads, asyncio, and fork()."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading

import pytest

import shardline


def test_many_threads_put_at_once(emulator) -> None:
    stream = emulator.create_stream(4)
    threads, per_thread = 8, 1000
    with shardline.Producer(**emulator.producer_options()) as producer:

        def work(t: int):
            futures = [producer.put(stream, b"%d-%d" % (t, i), partition_key=f"{t}-{i}")
                       for i in range(per_thread // 2)]
            futures += producer.put_many(stream, [(b"m%d-%d" % (t, i), f"m{t}-{i}")
                                                  for i in range(per_thread // 2)])
            return [f.result(30) for f in futures]

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(work, range(threads)))
    assert sum(len(r) for r in results) == threads * per_thread
    assert producer.metrics()["UserRecordsPut"] == threads * per_thread


def test_waiting_releases_the_gil(blackhole) -> None:
    producer = shardline.Producer(region="us-east-1", endpoint_url=blackhole,
                                  aws_access_key_id="a", aws_secret_access_key="b",
                                  request_timeout=1_000)
    counter = 0
    stop = threading.Event()

    def spin():
        nonlocal counter
        while not stop.is_set():
            counter += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        future = producer.put("clicks", b"x", partition_key="k")
        before = counter
        with pytest.raises(shardline.TimeoutError):
            future.result(0.5)
        with pytest.raises(shardline.TimeoutError):
            producer.flush(0.5)
        assert counter - before > 1000  # the other thread kept running
    finally:
        stop.set()
        thread.join()
        with pytest.raises(shardline.TimeoutError):
            producer.close(0.1)


def test_asyncio_await_and_gather(emulator) -> None:
    async def main():
        with shardline.Producer(**emulator.producer_options()) as producer:
            report = await producer.put("clicks", b"one", partition_key="k")
            reports = await asyncio.gather(*producer.put_many("clicks", [b"a", b"b", b"c"]))
            failed = producer.put("no-such-stream", b"x", partition_key="k")
            with pytest.raises(shardline.DeliveryError):
                await failed
            # Awaiting an already completed future.
            done = producer.put("clicks", b"d", partition_key="k")
            done.result(10)
            assert (await done).shard_id
            return report, reports

    report, reports = asyncio.run(main())
    assert report.shard_id.startswith("shardId-")
    assert len(reports) == 3 and all(r.sequence_number for r in reports)


def test_asyncio_wait_for_times_out_without_harm(blackhole) -> None:
    async def main():
        producer = shardline.Producer(region="us-east-1", endpoint_url=blackhole,
                                      aws_access_key_id="a", aws_secret_access_key="b",
                                      request_timeout=1_000)
        future = producer.put("clicks", b"x", partition_key="k")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(future, 0.2)
        assert not future.done()
        with pytest.raises(shardline.TimeoutError):
            producer.close(0.1)
        assert future.done()

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_producer_used_after_fork_raises_in_the_child(emulator) -> None:
    producer = shardline.Producer(**emulator.producer_options())
    producer.put("clicks", b"parent", partition_key="k").result(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read)
            try:
                producer.put("clicks", b"child", partition_key="k")
                message = "no error"
            except shardline.ShardlineError as e:
                message = str(e)
            ok = "fork()" in message
            # A new producer in the child works.
            with shardline.Producer(**emulator.producer_options()) as fresh:
                fresh.put("clicks", b"child", partition_key="k").result(10)
            os.write(write, message.encode())
            code = 0 if ok else 2
        except BaseException as e:  # noqa: BLE001
            os.write(write, repr(e).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        message = r.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, message
    assert "fork()" in message
    # The parent's producer is unaffected.
    producer.put("clicks", b"parent-again", partition_key="k").result(10)
    producer.close()
