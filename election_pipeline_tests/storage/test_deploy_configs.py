"""The deployment files of ``deploy/`` that this machine cannot run whole (no Docker daemon, no
Kubernetes cluster): the Docker run launcher's section builds a Dagster instance with the
project's ``deploy/dagster.yaml``, names only real settings, and the Helm values set the same
limits as ``deploy/dagster.yaml``."""

from __future__ import annotations

import dagster as dg
import yaml
from dagster_docker import DockerRunLauncher

from election_pipeline.settings import Settings

from .process_helpers import REPO
from .test_dagster_on_postgres import DEPLOY_YAML, dagster_pg_env

DOCKER_LAUNCHER = REPO / "deploy" / "docker" / "run_launcher.yaml"
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"


def test_docker_run_launcher_builds_the_instance(tmp_path, postgres_database, monkeypatch):
    instance_config = yaml.safe_load(DEPLOY_YAML.read_text())
    instance_config.update(yaml.safe_load(DOCKER_LAUNCHER.read_text()))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    for key, value in dagster_pg_env(postgres_database["name"]).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["election"]
        assert {"DAGSTER_PG_PASSWORD", "ELECTION_DATABASE_URL", "ELECTION_DUCKDB_PATH"} <= set(launcher.env_vars)
        assert launcher.container_kwargs["volumes"] == {"election-data": {"bind": "/srv/election", "mode": "rw"}}


def test_the_docker_launcher_passes_only_real_settings():
    env_vars = yaml.safe_load(DOCKER_LAUNCHER.read_text())["run_launcher"]["config"]["env_vars"]
    settings = {f"ELECTION_{name.upper()}" for name in Settings.model_fields}
    election = [v for v in env_vars if v.startswith("ELECTION_")]
    assert election and set(election) <= settings, set(election) - settings
    assert {v for v in env_vars if not v.startswith("ELECTION_")} == set(dagster_pg_env("x"))


def test_helm_values_set_the_limits_of_deploy_dagster_yaml():
    instance = yaml.safe_load(DEPLOY_YAML.read_text())
    values = yaml.safe_load(HELM_VALUES.read_text())
    runs = values["concurrency"]["runs"]
    assert runs["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["freeSlotsAfterRunEndSeconds"] == instance["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    [code] = values["dagster-user-deployments"]["deployments"]
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert code["dagsterApiGrpcArgs"] == ["--module-name", workspace["load_from"][0]["python_module"]["module_name"]]


def test_both_instance_files_queue_again_a_run_the_code_server_did_not_take(tmp_path, postgres_database, monkeypatch):
    """A run dequeued while the code server does not answer goes back into the queue (3 tries,
    15 s apart) in the project-local instance and in the production one alike."""
    for key, value in dagster_pg_env(postgres_database["name"]).items():
        monkeypatch.setenv(key, value)
    for source in (REPO / "election_pipeline" / "dagster.yaml", DEPLOY_YAML):
        home = tmp_path / source.parent.name
        home.mkdir()
        (home / "dagster.yaml").write_text(source.read_text())
        with dg.DagsterInstance.from_config(str(home)) as instance:
            queue = instance.get_concurrency_config().run_queue_config
            assert queue is not None, source
            assert (queue.max_user_code_failure_retries, queue.user_code_failure_retry_delay) == (3, 15), source
            assert queue.max_concurrent_runs == 4, source
