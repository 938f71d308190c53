"""The real-threads helper the race tests share (tests/concurrency.py)."""

from __future__ import annotations

import threading

from tests.concurrency import parallel


def test_each_thread_loads_before_any_of_them_works(app):
    loaded = threading.Event()
    seen: list[int] = []
    lock = threading.Lock()

    def load(index: int) -> int:
        with lock:
            seen.append(index)
            if len(seen) == 3:
                loaded.set()
        return index * 10

    def work(value: int) -> tuple[int, bool]:
        return value, loaded.is_set()

    assert parallel(3, app, work, load=load) == [(0, True), (10, True), (20, True)]


def test_a_failed_load_is_an_outcome_and_nobody_waits_forever(app):
    def load(index: int) -> int:
        if index == 1:
            raise ValueError("no such row")
        return index

    outcomes = parallel(3, app, lambda value: value, load=load)
    assert isinstance(outcomes[1], ValueError)
    assert all(isinstance(outcomes[i], threading.BrokenBarrierError) for i in (0, 2)), outcomes
