"""worker.py waits for Redis with a doubling pause instead of dying with it (the fault suite restarts a
real Redis under running workers: tests/faults/test_redis_restart.py)."""

from __future__ import annotations

import pytest

import worker
from tests.conftest import free_port


class GaveUp(Exception):
    pass


def test_it_waits_for_a_redis_that_does_not_answer_with_a_doubling_pause() -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 8:
            raise GaveUp

    with pytest.raises(GaveUp):
        worker.wait_for_redis(f"redis://127.0.0.1:{free_port()}/0", "test", sleep=sleep)  # nothing listens
    assert pauses == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_it_connects_at_once_to_a_redis_that_answers(redis_url: str) -> None:
    pauses: list[float] = []
    connection = worker.wait_for_redis(redis_url, "test", sleep=pauses.append)
    assert connection.ping() and pauses == []
