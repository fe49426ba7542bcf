"""The data-version gate: concurrent reads share one query, and none gets a version older
than its own arrival."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from election_pipeline.api.deps import DataVersionGate


class _Store:
    """A data version that a writer bumps; each read of it takes ``delay`` seconds and
    reports the version as it was when the read started."""

    def __init__(self, delay: float) -> None:
        self.version = 0
        self.delay = delay
        self.reads = 0
        self.lock = threading.Lock()

    def read(self) -> str:
        with self.lock:
            self.reads += 1
            seen = self.version
        time.sleep(self.delay)
        return str(seen)


def test_concurrent_requests_share_queries() -> None:
    gate, store = DataVersionGate(), _Store(delay=0.05)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: gate.get(store.read), range(16)))
    assert answers == ["0"] * 16
    # 16 requests at once: the first runs a query, the 15 that came during it share the next.
    assert store.reads <= 3
    assert gate.queries == store.reads


def test_no_request_gets_a_version_older_than_its_arrival() -> None:
    gate, store = DataVersionGate(), _Store(delay=0.2)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(gate.get, store.read)  # its query sees version 0
        time.sleep(0.05)
        store.version = 1  # a change committed while that query runs
        second = pool.submit(gate.get, store.read)  # arrives after the change
        assert first.result() == "0"
        assert second.result() == "1"
    assert store.reads == 2


def test_a_failed_query_is_run_again_for_the_waiting_requests() -> None:
    gate, calls = DataVersionGate(), []

    def flaky() -> str:
        calls.append(1)
        time.sleep(0.05)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return "v"

    with ThreadPoolExecutor(2) as pool:
        failing = pool.submit(gate.get, flaky)
        time.sleep(0.01)
        waiting = pool.submit(gate.get, flaky)
        assert waiting.result() == "v"
        try:
            failing.result()
        except ConnectionError:
            pass
        else:
            raise AssertionError("the first request's error was swallowed")
