"""Model promotion: the champion pointer, the decision rule, and `trainflow predict <pipeline>`."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, flow_run_records, run_cli
from trainflow.spec import PromotionSpec
from trainflow.tasks.common import promote


def _summary(tmp_path, run_id, value, metric="balanced_accuracy", validation=True):
    run_dir = tmp_path / "p" / run_id
    run_dir.mkdir(parents=True)
    summary = {"pipeline": "p", "run_id": run_id, "run_dir": str(run_dir), "primary_metric": metric,
               "metrics": {metric: value}, "validation": {"success": True} if validation else None,
               "data_digest": "d" * 64}
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    (run_dir / "report.md").write_text("# report\n")
    return summary


def test_first_run_becomes_champion_and_worse_run_does_not_replace_it(tmp_path):
    policy = PromotionSpec()
    first = promote.promote(_summary(tmp_path, "r1", 0.90), policy)
    assert first["promoted"] and "first champion" in first["reason"]
    assert promote.read_champion(tmp_path, "p")["run_id"] == "r1"

    worse = promote.promote(_summary(tmp_path, "r2", 0.85), policy)
    assert not worse["promoted"]
    assert "worse than the champion r1" in worse["reason"] and worse["champion_value"] == 0.90
    assert promote.read_champion(tmp_path, "p")["run_id"] == "r1"
    report = (tmp_path / "p" / "r2" / "report.md").read_text()
    assert "## Promotion" in report and "not promoted" in report and "worse than the champion r1" in report
    assert json.loads((tmp_path / "p" / "r2" / "metrics.json").read_text())["promotion"]["promoted"] is False

    equal = promote.promote(_summary(tmp_path, "r3", 0.90), policy)
    assert equal["promoted"]
    pointer = promote.read_champion(tmp_path, "p")
    assert pointer["run_id"] == "r3" and pointer["previous"] == "r1"
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["champion.json", "r1", "r2", "r3"]


def test_tolerance_direction_and_policy(tmp_path):
    promote.promote(_summary(tmp_path, "r1", 0.90), PromotionSpec())
    assert promote.promote(_summary(tmp_path, "r2", 0.88), PromotionSpec(tolerance=0.05))["promoted"]
    # rmse: lower is better, so a higher value is worse
    promote.promote(_summary(tmp_path, "e1", 2.0, metric="rmse"), PromotionSpec())
    d = promote.decide(_summary(tmp_path, "e2", 2.5, metric="rmse"), promote.read_champion(tmp_path, "p"),
                       PromotionSpec())
    assert not d["promoted"] and "lower is better" in d["reason"]
    off = promote.decide(_summary(tmp_path, "x1", 0.99), None, PromotionSpec(enabled=False))
    assert not off["promoted"] and "promotion.enabled: false" in off["reason"]
    unchecked = promote.decide(_summary(tmp_path, "x2", 0.99, validation=False), None, PromotionSpec())
    assert not unchecked["promoted"] and "not validated" in unchecked["reason"]
    nan = promote.decide(_summary(tmp_path, "x3", float("nan")), None, PromotionSpec())
    assert not nan["promoted"]


def test_resolve_model_errors_name_what_was_expected(tmp_path):
    from trainflow.errors import DataError

    with pytest.raises(DataError, match="neither a finished run folder"):
        promote.resolve_model("nope", tmp_path)
    (tmp_path / "p").mkdir()
    with pytest.raises(DataError, match="has no champion yet"):
        promote.resolve_model("p", tmp_path)
    (tmp_path / "p" / "r1.failed").mkdir()
    with pytest.raises(DataError, match="is a run that failed .* Pass a finished run folder"):
        promote.resolve_model(tmp_path / "p" / "r1.failed", tmp_path)


@pytest.mark.usefixtures("prefect_server")
def test_worse_run_keeps_champion_and_predict_uses_champion(tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_cli("run", SPECS / "penguins.yaml", "--out", out)[0] == 0
    [good] = complete_runs(out, "penguins")
    assert promote.read_champion(out, "penguins")["run_id"] == good.name
    # A crippled model (almost no regularisation budget, no resampling) scores worse.
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "model.C=0.0001",
                      "--set", "preprocess.resample.method=none", "--set", "preprocess.scale.method=none")
    assert code == 0
    [bad] = [r for r in complete_runs(out, "penguins") if r != good]
    bad_summary = json.loads((bad / "metrics.json").read_text())
    assert bad_summary["metrics"]["balanced_accuracy"] < json.loads((good / "metrics.json").read_text())[
        "metrics"]["balanced_accuracy"]
    assert bad_summary["promotion"]["promoted"] is False
    assert "not promoted" in (bad / "report.md").read_text()
    assert promote.read_champion(out, "penguins")["run_id"] == good.name

    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).head(5)
    rows.to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    code, _ = run_cli("predict", "penguins", tmp_path / "new.csv", "--out", tmp_path / "pred.csv", "--runs", out)
    assert code == 0
    assert str(good) in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "pred.csv")) == 5

    # The promotion decision and the data digest are visible on the flow run.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(bad_summary["flow_run_id"])
        task_runs, mine = flow_run_records(client, bad_summary["flow_run_id"])
    assert {"pipeline:penguins", "task:classification", f"data:{bad_summary['data_digest'][:12]}"} <= set(run.tags)
    # Its task runs carry only their own tags: each tagged task run costs a concurrency-slot call;
    # fit's `trainflow-train` only while a limit on it exists (tests/test_train_limit.py).
    assert {t.name.split("-")[0]: t.tags for t in task_runs} == {
        "load": [], "validate": [], "profile": [], "split": [], "fit": [], "evaluate": [],
        "publish": [], "promote": []}
    assert "not promoted" in mine["penguins-promotion"].data


@pytest.mark.usefixtures("prefect_server")
def test_failed_run_is_tagged_from_its_start_and_never_champion(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    out = tmp_path / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "name=penguins-tagcheck",
                      "--set", "validation.min_rows=100000")
    assert code == 4  # validation failed
    assert promote.read_champion(out, "penguins-tagcheck") is None
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["pipeline:penguins-tagcheck", "task:classification"])))
    assert [r.state.type.value for r in runs] == ["FAILED"]


def _promoted_history(tmp_path):
    policy = PromotionSpec()
    promote.promote(_summary(tmp_path, "r1", 0.90), policy)
    promote.promote(_summary(tmp_path, "r2", 0.85), policy)  # worse: not promoted
    promote.promote(_summary(tmp_path, "r3", 0.92), policy)
    return tmp_path / "p" / promote.CHAMPION_FILE


@pytest.mark.parametrize("damage", ["", '{"pipeline": "p", "run_id": "r', "[1, 2]", '{"run_id": "../../etc"}',
                                    '{"run_id": ""}', "\udcff"])
def test_damaged_champion_is_rebuilt_from_the_run_folders(tmp_path, capsys, damage):
    pointer = _promoted_history(tmp_path)
    pointer.write_bytes(damage.encode("utf-8", "surrogateescape"))
    decision = promote.promote(_summary(tmp_path, "r4", 0.80), PromotionSpec())
    assert not decision["promoted"] and "worse than the champion r3" in decision["reason"]
    assert "rebuilt from the run folders: the champion is run r3" in capsys.readouterr().err
    healed = promote.read_champion(tmp_path, "p")
    assert healed["run_id"] == "r3" and healed["previous"] == "r1" and "rebuilt" in healed

    pointer.write_text("")  # `trainflow predict <pipeline>` heals it too
    assert promote.resolve_model("p", tmp_path) == tmp_path / "p" / "r3"
    assert "was damaged" in capsys.readouterr().err


def test_damaged_champion_without_any_promoted_run_is_removed(tmp_path, capsys):
    _summary(tmp_path, "r1", 0.9)  # a finished run that never got a promotion decision
    (tmp_path / "p" / promote.CHAMPION_FILE).write_text("{")
    assert promote.read_champion(tmp_path, "p") is None
    assert not (tmp_path / "p" / promote.CHAMPION_FILE).exists()
    assert "no run folder records a promotion" in capsys.readouterr().err
    assert promote.promote(_summary(tmp_path, "r2", 0.5), PromotionSpec())["promoted"]  # the next run is champion


def test_promotion_retried_after_a_partial_write_gives_the_same_result(tmp_path, monkeypatch):
    policy = PromotionSpec()
    promote.promote(_summary(tmp_path, "r1", 0.90), policy)
    summary = _summary(tmp_path, "r2", 0.95)
    real_record = promote.record
    calls = []

    def record_fails_once(run_dir, decision):
        calls.append(1)
        if len(calls) == 1:  # the pointer is switched, then the process hiccups before the report
            raise OSError("disk busy")
        real_record(run_dir, decision)

    monkeypatch.setattr(promote, "record", record_fails_once)
    with pytest.raises(OSError):
        promote.promote(summary, policy)
    first = promote.read_champion(tmp_path, "p")
    retried = promote.promote(summary, policy)
    again = promote.promote(summary, policy)  # and once more: nothing changes
    assert retried["promoted"] and retried["champion_run_id"] == "r1" and again == retried
    pointer = promote.read_champion(tmp_path, "p")
    assert pointer == first and pointer["run_id"] == "r2" and pointer["previous"] == "r1"
    report = (tmp_path / "p" / "r2" / "report.md").read_text()
    assert report.count("## Promotion") == 1 and "promoted to champion" in report
    recorded = json.loads((tmp_path / "p" / "r2" / "metrics.json").read_text())["promotion"]
    assert recorded["promoted"] and recorded["champion_run_id"] == "r1"
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["champion.json", "r1", "r2"]


def test_worse_run_promoted_twice_keeps_one_report_section(tmp_path):
    policy = PromotionSpec()
    promote.promote(_summary(tmp_path, "r1", 0.90), policy)
    summary = _summary(tmp_path, "r2", 0.50)
    first, second = promote.promote(summary, policy), promote.promote(summary, policy)
    assert not first["promoted"] and first["reason"] == second["reason"]
    report = (tmp_path / "p" / "r2" / "report.md").read_text()
    assert report.count("## Promotion") == 1 and "not promoted" in report
    assert promote.read_champion(tmp_path, "p")["run_id"] == "r1"
