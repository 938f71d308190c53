"""Real threads for concurrency tests: each runs in its own app context, with its own database session and
connection, released together by a barrier so they reach the database at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable

from healthcrm.extensions import db


def parallel(count: int, app, work: Callable[[int], object]) -> list:
    """Run `work(i)` for i in range(count), in `count` threads at once; return the outcomes in index order
    (an exception raised by a thread is its outcome)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[index] = work(index)
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
