"""deploy/: Dockerfile, docker-compose.yml and the Kubernetes example are consistent and their
commands exist (no Docker engine or cluster here, so this is what can be checked)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent


def _pools() -> dict[str, dict]:
    doc = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    return {p["name"]: p for p in doc["definitions"]["work_pools"].values()}


def _dockerfile() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest))
            current = ""
    return lines


def test_dockerfile_copies_existing_sources_and_runs_a_worker_command_that_exists():
    instructions = _dockerfile()
    for word, rest in instructions:
        if word == "COPY":
            for src in shlex.split(rest)[:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the project"
    [cmd] = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd[:3] == ["prefect", "worker", "start"]
    assert cmd[cmd.index("--pool") + 1] in _pools()
    # The image's command line and the trainflow console script exist and parse their options.
    for argv in (cmd + ["--help"], ["trainflow", "--help"], ["trainflow", "serve", "--help"]):
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(argv)} failed: {done.stderr[-500:]}"


def test_compose_wires_postgres_server_and_worker():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "server", "worker"} <= set(services)
    server, worker = services["server"], services["worker"]
    assert "postgres:5432" in server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert server["command"][:3] == ["prefect", "server", "start"]
    import prefect

    assert server["image"].startswith(f"prefecthq/prefect:{prefect.__version__}")
    assert worker["environment"]["PREFECT_API_URL"] == "http://server:4200/api"
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    script = worker["command"][-1]
    assert "prefect worker start --pool trainflow-process" in script
    assert "prefect concurrency-limit create trainflow-train 1" in script
    deployed = services["deploy"]["command"]
    names = {e["name"] for e in yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["deployments"]}
    assert {deployed[i + 1] for i, a in enumerate(deployed) if a == "--name"} <= names


def test_kubernetes_worker_matches_the_pool_in_prefect_yaml():
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "worker.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "PersistentVolumeClaim"} <= kinds
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    pool = args[args.index("--pool") + 1]
    assert args[args.index("--type") + 1] == "kubernetes" and pool in _pools()
    template = json.loads((DEPLOY / "k8s" / "base-job-template.json").read_text())
    assert set(_pools()[pool]["job_variables"]) <= set(template["variables"]["properties"])


@pytest.mark.usefixtures("prefect_server")
def test_kubernetes_base_job_template_is_accepted_by_a_prefect_server():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    template = json.loads((DEPLOY / "k8s" / "base-job-template.json").read_text())
    with get_client(sync_client=True) as client:
        pool = client.create_work_pool(WorkPoolCreate(name="trainflow-k8s-check", type="kubernetes",
                                                      base_job_template=template), overwrite=True)
        try:
            assert pool.base_job_template["variables"]["properties"]["image_pull_policy"]["default"] == "IfNotPresent"
        finally:
            client.delete_work_pool("trainflow-k8s-check")
