"""Faults of the environment rather than the input: a Prefect server that does not answer."""

from __future__ import annotations

import time

from tests.helpers import assert_nothing_complete, run_cli
from tests.reliability.conftest import recipe_spec


def test_unreachable_prefect_api_url_fails_fast_and_says_what_to_do(tmp_path, capsys):
    from prefect.settings import temporary_settings

    spec = recipe_spec(tmp_path, "tabular")
    start = time.monotonic()
    with temporary_settings(updates={"api.url": "http://127.0.0.1:9/api"}):  # port 9 (discard): nobody listens
        code, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert time.monotonic() - start < 10, "must not wait through Prefect's retries"
    assert code == 1, err
    assert "The Prefect server at http://127.0.0.1:9/api (PREFECT_API_URL) is unreachable" in err
    assert "prefect server start" in err and "unset PREFECT_API_URL" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert_nothing_complete(tmp_path / "runs")
