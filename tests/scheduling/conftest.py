"""The scheduling tests fix the clock with time-machine (`at(...)`), which a worker process cannot share: in
CI their jobs run inline, in the test process, on the test's clock. `test_worker.py` sends its jobs through
the real worker instead, on the real clock."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _jobs_on_the_tests_clock(request, app):
    if request.node.get_closest_marker("worker") is None:
        request.getfixturevalue("inline_jobs")
