"""Transient errors are retried; spec, data and validation errors fail at once."""

from __future__ import annotations

import pytest
from prefect import flow, task

from trainflow.errors import DataError, ValidationFailed
from trainflow.flows.pipeline import RETRIES

pytestmark = pytest.mark.usefixtures("prefect_server")


def attempts_until_done(error: BaseException) -> tuple[int, bool]:
    calls = []

    @task(**{**RETRIES, "retry_delay_seconds": 0})
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return "ok"

    @flow
    def run() -> bool:
        return flaky(return_state=True).is_completed()

    done = run()
    return len(calls), done


def test_io_error_is_retried():
    assert attempts_until_done(OSError("disk busy")) == (2, True)


@pytest.mark.parametrize("error", [DataError("bad column"), ValidationFailed("2 expectations failed")])
def test_user_errors_are_not_retried(error):
    assert attempts_until_done(error) == (1, False)
