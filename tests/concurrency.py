"""Real threads for concurrency tests: each runs in its own app context, with its own database session and
connection, released together by a barrier so they reach the database at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from healthcrm.extensions import db


def parallel(
    count: int, app, work: Callable[[Any], object], load: Callable[[int], object] | None = None
) -> list:
    """Run `work(i)` for i in range(count), in `count` threads at once; return the outcomes in index order
    (an exception raised by a thread is its outcome).

    With `load`, each thread first runs `load(i)` (reading its rows, say) before the barrier, and then
    `work(loaded)`: every thread holds what it read before any of them writes, as two requests that arrive
    together would. Pass ids, never ORM objects of the test's own session."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        with app.app_context():
            try:
                given = index if load is None else load(index)
            except Exception as error:
                results[index] = error
                barrier.abort()  # the others must not wait for a thread that will never arrive
            else:
                try:
                    barrier.wait()
                    results[index] = work(given)
                except Exception as error:  # a database that refuses is an outcome too
                    results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results
