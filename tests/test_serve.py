"""Deployments: deploy/prefect.yaml, the scheduled-run flow and its skip-if-unchanged rule."""

from __future__ import annotations

import os

import shutil

import pytest
import yaml

from tests.conftest import DATA, REPO, SPECS
from tests.helpers import complete_runs
from trainflow.errors import SpecError
from trainflow.flows import serve

DEPLOY = REPO / "deploy" / "prefect.yaml"


def test_deploy_file_has_a_scheduled_deployment_per_demo_spec():
    from trainflow.flows.cli import demos

    entries = serve.read_deployments(DEPLOY)
    by_spec = {e["parameters"]["spec_path"]: e for e in entries
               if e["work_pool"]["name"] == "trainflow-process" and "spec_path" in e["parameters"]}
    for files in demos().values():
        for name in files:
            entry = by_spec[f"flows/specs/{name}"]
            assert entry["schedules"] and all(s.get("cron") for s in entry["schedules"])
            assert "trainflow" in entry["tags"]
    for entry in entries:  # the package really has the flow the entrypoint names
        from prefect.flows import load_flow_from_entrypoint

        monitor = entry["entrypoint"] in serve.MONITOR_ENTRYPOINTS
        assert load_flow_from_entrypoint(entry["entrypoint"]).name == ("trainflow-monitor" if monitor
                                                                       else "trainflow-scheduled")
    raw = DEPLOY.read_text()
    assert "# - name: my-pipeline-daily" in raw  # the commented template for a new pipeline


def test_runner_deployment_carries_schedule_parameters_and_tags(tmp_path):
    [dep] = serve.runner_deployments(DEPLOY, only=["penguins-nightly"], out=str(tmp_path))
    assert dep.name == "penguins-nightly"
    assert [s.schedule.cron for s in dep.schedules] == ["0 2 * * *"]
    assert dep.parameters["spec_path"] == str(SPECS / "penguins.yaml")
    assert dep.parameters["out"] == str(tmp_path) and dep.parameters["skip_if_unchanged"] is True
    assert "pipeline:penguins" in dep.tags
    assert dep.entrypoint == "trainflow.flows.serve.run_spec_file"
    [fast] = serve.runner_deployments(DEPLOY, only=["penguins-nightly"], interval=5)
    assert fast.schedules[0].schedule.interval.total_seconds() == 5
    served = {d.name for d in serve.runner_deployments(DEPLOY)}  # every spec file exists and loads
    assert served == {"penguins-nightly", "digits-nightly", "gunpoint-weekly", "airline-monthly",
                      "sms-spam-nightly", "emotions-weekly", "audio-digits-weekly",
                      "audio-digits-new-speaker-weekly", "av-digits-weekly", "m1-monthly-panel",
                      "penguins-monitor"}  # not k8s
    with pytest.raises(SpecError, match="did you mean 'penguins-nightly'"):
        serve.runner_deployments(DEPLOY, only=["penguins-nighty"])


def test_bad_deployment_entries_are_reported(tmp_path):
    bad = tmp_path / "prefect.yaml"
    bad.write_text(yaml.safe_dump({"deployments": [{"name": "x", "entrypoint": "my.flow:f", "parameters": {}}]}))
    with pytest.raises(SpecError) as err:
        serve.read_deployments(bad)
    assert "entrypoint must be" in str(err.value) and "spec_path is required" in str(err.value)
    with pytest.raises(SpecError, match="does not exist"):
        serve.resolve_spec_path("no/such/spec.yaml")
    good = {"name": "y", "entrypoint": serve.ENTRYPOINTS[0], "parameters": {"spec_path": "s.yaml"}}
    for doc, expected in [
        ({"deployments": 5}, "'deployments' must be a list of deployments"),
        ({"deployments": [5, {**good, "parameters": 3}]}, "deployments[0] must be a mapping"),
        ({"deployments": [{**good, "schedules": [{"cron": "61 * * * *"}]}]}, "schedules[0] is not a schedule Prefect "
                                                                            "accepts: Invalid cron string"),
        ({"deployments": [{**good, "schedules": [{"interval": -5}, {"every": 3}]}]},
         "schedules[0].interval must be a positive number of seconds"),
        ({"deployments": [{**good, "schedules": [{"cron": "0 3 * * *", "timezone": "Mars/Base"}]}]},
         "'Mars/Base' is not an IANA time zone"),
    ]:
        bad.write_text(yaml.safe_dump(doc))
        with pytest.raises(SpecError) as err:
            serve.read_deployments(bad)
        assert str(err.value).startswith("Invalid deployment file") and expected in str(err.value), str(err.value)
    bad.write_text("deployments: [\n")
    with pytest.raises(SpecError, match="is not valid UTF-8 YAML"):
        serve.read_deployments(bad)
    # a repeated key is refused; a key a merge brings in and the entry sets again is an override
    bad.write_text("deployments:\n  - name: a\n    name: b\n")
    with pytest.raises(SpecError, match=r"the key 'name' is given twice in section 'deployments\[0\]' \(lines 2 and 3\)"):
        serve.read_deployments(bad)
    bad.write_text(f"base: &base {{entrypoint: '{serve.ENTRYPOINTS[0]}', parameters: {{spec_path: s.yaml}}}}\n"
                   "deployments:\n  - <<: *base\n    name: y\n    parameters: {spec_path: t.yaml}\n")
    assert serve.read_deployments(bad)[0]["parameters"] == {"spec_path": "t.yaml"}
    # aliases nested ten deep (10^9 leaves if walked): the message shows a bounded part of it
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]"
                                                            for k in range(1, 10)]
    bad.write_text("\n".join(lines) + "\ndeployments: [*a9]\n")
    with pytest.raises(SpecError, match=r"deployments\[0\] must be a mapping") as err:
        serve.read_deployments(bad)
    assert len(str(err.value)) < 1000
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # never opened: reading it would block for ever
    with pytest.raises(SpecError, match="deployment file .*fifo.yaml"):
        serve.read_deployments(fifo)


@pytest.mark.usefixtures("prefect_server")
def test_scheduled_run_skips_training_when_data_and_spec_are_unchanged(tmp_path):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    raw = yaml.safe_load((SPECS / "penguins.yaml").read_text())
    shutil.copy(DATA / "penguins.csv", spec_dir / "penguins.csv")
    raw["data"]["path"] = "penguins.csv"
    spec_path = spec_dir / "penguins.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    out = str(tmp_path / "runs")

    first = serve.run_spec_file(str(spec_path), out=out)
    assert "reused" not in first and len(complete_runs(out, "penguins")) == 1
    second = serve.run_spec_file(str(spec_path), out=out)
    assert second["reused"] is True and second["run_id"] == first["run_id"]
    assert len(complete_runs(out, "penguins")) == 1
    # A changed spec, a changed data file, or skip_if_unchanged=False train again.
    changed = serve.run_spec_file(str(spec_path), overrides=["model.C=0.5"], out=out)
    assert "reused" not in changed
    with open(spec_dir / "penguins.csv", "a") as fh:
        fh.write("Adelie,Torgersen,39.1,18.7,181,3750,male,2009\n")
    assert "reused" not in serve.run_spec_file(str(spec_path), out=out)
    assert "reused" not in serve.run_spec_file(str(spec_path), out=out, skip_if_unchanged=False)
    assert len(complete_runs(out, "penguins")) == 4
