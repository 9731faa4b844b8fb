"""The Kubernetes deployment (deploy/k8s/) against Dagster's and dagster-k8s's own schemas, without a cluster.

The instance file is validated the way `DagsterInstance` loads it, its K8sRunLauncher is constructed (the kube
config loading stubbed), and the pod of a GPU step is built exactly as dagster-k8s's step handler builds it
from the launcher, the executor config and the op tags: the GPU limit, the GPU node placement and the shared
volume must all reach it. The Helm values must describe the same deployment as the instance file.
"""

import json
import shutil
import sys
import tomllib
import types
from pathlib import Path

import kubernetes
import pytest
import yaml
from dagster import asset
from dagster._config import process_config, validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    USER_DEFINED_K8S_JOB_CONFIG_SCHEMA,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_k8s.models import k8s_snake_case_dict

from vf3d_assets import k8s

ROOT = Path(__file__).resolve().parents[1]
K8S_DIR = ROOT / "deploy" / "k8s"
INSTANCE = yaml.safe_load((K8S_DIR / "dagster.yaml").read_text())
VALUES = yaml.safe_load((K8S_DIR / "values.yaml").read_text())
STORAGE = {doc["kind"]: doc for doc in yaml.safe_load_all((K8S_DIR / "storage.yaml").read_text())}
LAUNCHER = INSTANCE["run_launcher"]["config"]


@asset(pool=k8s.GPU_POOL, op_tags=k8s.gpu_step_tags())
def gpu_asset():
    """Stands in for the code location's GPU assets (importing those takes longer than this whole test)."""


@asset
def cpu_asset():
    pass


@pytest.fixture
def launcher(monkeypatch):
    """The instance's K8sRunLauncher, built from its processed config without a cluster to talk to."""
    monkeypatch.setattr("dagster_k8s.launcher.load_kubernetes_config", lambda **kwargs: None)
    processed = process_config(K8sRunLauncher.config_type(), LAUNCHER)
    assert processed.success, processed.errors
    return K8sRunLauncher(**processed.value)


def _step_pod(launcher, executor, op) -> kubernetes.client.V1PodSpec:
    """The pod spec K8sStepHandler gives a step of `op` (its _get_container_context, then the job)."""
    config = executor.config_schema.resolve_config({}).value["config"]
    context = K8sContainerContext.create_for_run(DagsterRun(job_name="shot_video", run_id="run"), launcher,
                                                 include_run_tags=False)
    for layer in (UserDefinedDagsterK8sConfig.from_dict(config.get("step_k8s_config", {})),
                  get_user_defined_k8s_config(op.tags),
                  UserDefinedDagsterK8sConfig.from_dict(config["per_step_k8s_config"].get(op.name, {}))):
        context = context.merge(K8sContainerContext(run_k8s_config=layer))
    job = construct_dagster_k8s_job(context.get_k8s_job_config("registry.example.com/vf3d:test", launcher),
                                    args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{op.name}",
                                    user_defined_k8s_config=context.run_k8s_config, component="step_worker")
    return job.spec.template.spec


def test_instance_config_passes_dagsters_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "secret")
    shutil.copy(K8S_DIR / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))  # what DagsterInstance.from_config validates
    assert custom_class is None
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    (gpu_runs,) = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {gpu_runs["key"]: gpu_runs["value"]} == k8s.GPU_RUN_TAGS  # the tag the GPU jobs are to carry
    coordinator = INSTANCE["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator"
    assert process_config(QueuedRunCoordinator.config_type(), coordinator["config"]).success
    # The run queue's limits go under `concurrency.runs`: Dagster refuses them in the coordinator's config.
    misplaced = {**INSTANCE, "run_coordinator": {**coordinator, "config": {"max_concurrent_runs": 4}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(misplaced))
    with pytest.raises(Exception, match="max_concurrent_runs"):
        dagster_instance_config(str(tmp_path))


def test_run_launcher_builds_without_a_cluster(launcher):
    assert launcher.job_namespace == "vf3d"
    assert launcher.env_config_maps == ["vf3d-env"] and launcher.env_secrets == ["vf3d-secrets"]
    mounts = launcher.run_k8s_config["container_config"]["volume_mounts"]
    assert mounts == [{"name": "vf3d-data", "mount_path": "/data"}]


def test_gpu_step_tags_pass_the_dagster_k8s_schema():
    tags = k8s.gpu_step_tags(2)
    assert list(tags) == [USER_DEFINED_K8S_CONFIG_KEY]
    value = tags[USER_DEFINED_K8S_CONFIG_KEY]
    assert validate_config(USER_DEFINED_K8S_JOB_CONFIG_SCHEMA, value).success
    assert value["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    stored = json.loads(gpu_asset.op.tags[USER_DEFINED_K8S_CONFIG_KEY])  # Dagster keeps op tags as JSON strings
    assert stored == k8s.gpu_step_tags()[USER_DEFINED_K8S_CONFIG_KEY]
    with pytest.raises(ValueError):
        k8s.gpu_step_tags(0)


def test_gpu_executor_config_passes_the_k8s_executor_schema(monkeypatch):
    resolved = k8s.gpu_executor(["anchors", "video"]).config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    per_step = resolved.value["config"]["per_step_k8s_config"]
    assert set(per_step) == {"anchors", "video"}
    assert per_step["video"]["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    # By default the executor finds the code location's gpu-pool assets itself.
    monkeypatch.setitem(sys.modules, "vf3d_assets.assets",
                        types.SimpleNamespace(ALL_ASSETS=[gpu_asset, cpu_asset, "not an asset"]))
    assert k8s.gpu_pool_steps([gpu_asset, cpu_asset]) == ["gpu_asset"]
    default = k8s.gpu_executor().config_schema.resolve_config({}).value["config"]
    assert set(default["per_step_k8s_config"]) == {"gpu_asset"}


@pytest.mark.parametrize("tagged", [True, False], ids=["op-tags", "executor-config"])
def test_a_gpu_step_pod_gets_one_gpu_on_a_gpu_node_with_the_shared_volume(launcher, tagged):
    op = (gpu_asset if tagged else cpu_asset).op
    executor = k8s.gpu_executor([] if tagged else [op.name])
    pod = _step_pod(launcher, executor, op)
    container = pod.containers[0]
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert container.resources.requests == {"cpu": "1", "memory": "4Gi"}  # the launcher's, merged in
    assert pod.node_selector == k8s.GPU_NODE_SELECTOR
    assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("vf3d-data", "/data")]
    assert [v.persistent_volume_claim.claim_name for v in pod.volumes] == ["vf3d-data"]
    assert [e.config_map_ref.name for e in container.env_from if e.config_map_ref] == ["vf3d-env"]
    assert [e.secret_ref.name for e in container.env_from if e.secret_ref] == ["vf3d-secrets"]
    assert pod.service_account_name == "dagster"


def test_a_cpu_step_pod_gets_no_gpu(launcher):
    pod = _step_pod(launcher, k8s.gpu_executor(["gpu_asset"]), cpu_asset.op)
    assert "nvidia.com/gpu" not in (pod.containers[0].resources.limits or {})
    assert not pod.node_selector and not pod.tolerations
    assert [v.name for v in pod.volumes] == ["vf3d-data"]


def test_helm_values_describe_the_same_deployment():
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    runs = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher" and runs["jobNamespace"] == LAUNCHER["job_namespace"]
    for source in (runs, deployment):
        assert [c["name"] for c in source["envConfigMaps"]] == LAUNCHER["env_config_maps"]
        assert [s["name"] for s in source["envSecrets"]] == LAUNCHER["env_secrets"]
    # The same pod settings, once both are in dagster-k8s's snake_case form.
    run_k8s = LAUNCHER["run_k8s_config"]
    assert k8s_snake_case_dict(kubernetes.client.V1Container, runs["runK8sConfig"]["containerConfig"]) == \
        run_k8s["container_config"]
    assert k8s_snake_case_dict(kubernetes.client.V1PodSpec, runs["runK8sConfig"]["podSpecConfig"]) == \
        run_k8s["pod_spec_config"]
    assert k8s_snake_case_dict(kubernetes.client.V1PodSpec, {"volumes": deployment["volumes"]})["volumes"] == \
        run_k8s["pod_spec_config"]["volumes"]
    concurrency = VALUES["concurrency"]
    assert concurrency["enabled"]
    assert concurrency["pools"] == {"defaultLimit": 1, "granularity": "op"} and \
        INSTANCE["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert concurrency["runs"]["maxConcurrentRuns"] == INSTANCE["concurrency"]["runs"]["max_concurrent_runs"]
    assert concurrency["runs"]["tagConcurrencyLimits"] == INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]
    assert VALUES["dagsterDaemon"]["runCoordinator"]["type"] == INSTANCE["run_coordinator"]["class"]


def test_the_shared_volume_and_environment():
    pvc, env = STORAGE["PersistentVolumeClaim"], STORAGE["ConfigMap"]
    assert pvc["metadata"]["name"] == "vf3d-data" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert env["metadata"]["name"] == "vf3d-env"
    mount = LAUNCHER["run_k8s_config"]["container_config"]["volume_mounts"][0]["mount_path"]
    for name in ("VF3D_HOME", "VF3D_WEIGHTS_DIR", "HF_HOME"):
        assert env["data"][name].startswith(mount + "/"), name


@pytest.fixture
def k8s_location(monkeypatch):
    """The code location as the cluster's code server loads it: VF3D_EXECUTOR from the ConfigMap of storage.yaml.
    Reloaded back to this machine's deployment afterwards."""
    import importlib

    from vf3d_assets import definitions

    for name, value in STORAGE["ConfigMap"]["data"].items():
        if name.startswith("VF3D_") and name != "VF3D_HOME" and name != "VF3D_WEIGHTS_DIR":
            monkeypatch.setenv(name, value)
    yield importlib.reload(definitions).defs
    monkeypatch.undo()
    importlib.reload(definitions)


def _submitted_step_job(launcher, job, run, step_key, monkeypatch) -> kubernetes.client.V1Job:
    """The Kubernetes Job dagster-k8s submits for one step of `run`: the job's executor built by its own creation
    function (as `dagster api execute_run` does), then its step handler's `launch_step`, with the Kubernetes API
    call captured instead of sent."""
    from dagster._core.events import DagsterEvent
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._grpc.types import ExecuteStepArgs

    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda *a, **k: None)
    monkeypatch.setattr(DagsterEvent, "step_worker_starting", staticmethod(lambda *a, **k: None))  # needs a plan
    config = job.executor_def.config_schema.resolve_config({}).value["config"]
    executor = job.executor_def.executor_creation_fn(
        types.SimpleNamespace(instance=types.SimpleNamespace(run_launcher=launcher), executor_config=config))
    handler = executor._step_handler
    submitted = []
    monkeypatch.setattr(handler._api_client, "create_namespaced_job_with_retries",
                        lambda body, namespace: submitted.append((body, namespace)))
    origin = JobPythonOrigin(job.name, RepositoryPythonOrigin(
        sys.executable, ModuleCodePointer("vf3d_assets.definitions", "defs", None),
        container_image="registry.example.com/vf3d:test"))
    step = next(node for node in job.graph.node_dict.values() if node.name == step_key)
    context = types.SimpleNamespace(
        dagster_run=run, instance=types.SimpleNamespace(run_launcher=launcher),
        step_tags={step_key: step.tags},
        get_step_context=lambda key: types.SimpleNamespace(step=types.SimpleNamespace(op_name=key)),
        execute_step_args=ExecuteStepArgs(origin, run.run_id, [step_key]))
    list(handler.launch_step(context))
    (body, namespace), = submitted
    assert namespace == "vf3d"
    return body


def test_the_k8s_deployment_submits_the_steps_of_a_real_run(k8s_location, launcher, monkeypatch):
    """Chosen by configuration alone, the code location's jobs use the k8s step executor and carry the GPU run tag;
    a real run of `shot_video` then gets one GPU-node pod with one GPU for its GPU step (`anchors`) and a plain pod
    for its CPU step (`video_anchor_warp`), both with the shared volume and the environment."""
    job = k8s_location.resolve_job_def("shot_video")
    assert job.executor_def.name == "k8s_gpu_executor" and job.tags == k8s.GPU_RUN_TAGS
    assert k8s_location.resolve_job_def("benchmark_table").tags == {}  # no GPU step: no GPU run slot
    from dagster import instance_for_test

    with instance_for_test() as instance:
        run = instance.create_run_for_job(job, tags={**job.tags, "dagster/partition": "demo|photo"})
        gpu_job = _submitted_step_job(launcher, job, run, "anchors", monkeypatch)
        cpu_job = _submitted_step_job(launcher, job, run, "video_anchor_warp", monkeypatch)
    assert run.tags["vf3d/gpu"] == "true"
    for body, gpu in ((gpu_job, True), (cpu_job, False)):
        pod = body.spec.template.spec
        container = pod.containers[0]
        assert (container.resources.limits or {}).get("nvidia.com/gpu") == ("1" if gpu else None)
        assert pod.node_selector == (k8s.GPU_NODE_SELECTOR if gpu else None)
        assert [t.key for t in pod.tolerations or []] == (["nvidia.com/gpu"] if gpu else [])
        assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("vf3d-data", "/data")]
        assert [v.persistent_volume_claim.claim_name for v in pod.volumes] == ["vf3d-data"]
        assert [e.config_map_ref.name for e in container.env_from if e.config_map_ref] == ["vf3d-env"]
        env = {e.name: e.value for e in container.env}
        assert env["DAGSTER_RUN_JOB_NAME"] == "shot_video" and env["DAGSTER_RUN_STEP_KEY"] in ("anchors",
                                                                                               "video_anchor_warp")
        assert container.image == "registry.example.com/vf3d:test"
        assert container.args[1:] == ["-m", "dagster", "api", "execute_step"]  # the code server's Python
        assert body.metadata.labels["dagster/op"] == env["DAGSTER_RUN_STEP_KEY"]
