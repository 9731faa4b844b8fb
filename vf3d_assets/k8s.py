"""Scale-out on Kubernetes with dagster-k8s: every step in its own pod, one GPU per GPU step.

Two locks keep a GPU to one step (deploy/k8s/README.md):
- Kubernetes: a GPU step's container asks for `nvidia.com/gpu` (a device the scheduler hands out whole), on a
  GPU node (node selector + toleration of the GPU nodes' taint); a CPU step's pod asks for none.
- Dagster: the GPU assets run in the concurrency pool `gpu` (limit = number of GPUs; `default_limit: 1`
  in deploy/k8s/dagster.yaml), so no more GPU steps are launched than there are GPUs to take them.

Wired by configuration: with the deployment's `executor = "k8s"` (VF3D_EXECUTOR, set in deploy/k8s/storage.yaml's
ConfigMap), `definitions.py` gives the code location `gpu_executor()` and tags its GPU jobs with `GPU_RUN_TAGS`.
Inside a GPU step's pod the device plugin exposes one GPU, so the GPU resource's device lease
(`resources.devices`, VF3D_GPUS=auto) finds exactly that one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dagster import AssetsDefinition, ExecutorDefinition
from dagster_k8s import k8s_job_executor

K8S_CONFIG_TAG = "dagster-k8s/config"  # dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY
GPU_POOL = "gpu"
# Run tags of the jobs with GPU steps: the run queue lets no more of them be in progress than there are GPUs
# (`concurrency.runs.tag_concurrency_limits` in deploy/k8s/dagster.yaml).
GPU_RUN_TAGS = {"vf3d/gpu": "true"}
GPU_RESOURCE = "nvidia.com/gpu"
# Label of GPU nodes from NVIDIA's GPU feature discovery (GPU operator); GPU node pools are tainted so that only
# pods tolerating `nvidia.com/gpu` land there (GKE, AKS and EKS GPU pools use this key).
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]


def _gpu_k8s_config(gpus: int) -> dict[str, Any]:
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    # A limit alone: for extended resources Kubernetes sets the request equal to the limit.
    return {
        "container_config": {"resources": {"limits": {GPU_RESOURCE: str(gpus)}}},
        "pod_spec_config": {"node_selector": dict(GPU_NODE_SELECTOR),
                            "tolerations": [dict(t) for t in GPU_TOLERATIONS]},
    }


def gpu_step_tags(gpus: int = 1) -> dict[str, dict[str, Any]]:
    """Op tags that put a step's pod on a GPU node with `gpus` GPUs (`@asset(op_tags=gpu_step_tags())`).

    The value is a dict; Dagster stores op tags as JSON and dagster-k8s merges it into the step pod's spec.
    """
    return {K8S_CONFIG_TAG: _gpu_k8s_config(gpus)}


def gpu_pool_steps(assets: Iterable[Any]) -> list[str]:
    """Step (op) names of the assets that run in the `gpu` concurrency pool."""
    return sorted(a.op.name for a in assets if isinstance(a, AssetsDefinition) and a.op.pool == GPU_POOL)


def gpu_executor(gpu_steps: Iterable[str] | None = None, gpus: int = 1) -> ExecutorDefinition:
    """`k8s_job_executor` (one Kubernetes Job per step) giving each GPU step `gpus` GPUs.

    `gpu_steps`: the steps that get a GPU; default: every asset of the code location in the `gpu` pool.
    Everything else (image, namespace, env config maps, the shared PVC) comes from the K8sRunLauncher of the
    instance (deploy/k8s/dagster.yaml), which dagster-k8s applies to step pods as well.
    """
    if gpu_steps is None:
        # Heavy (torch, bpy): imported only when the steps are not given.
        from vf3d_assets.assets import ALL_ASSETS

        gpu_steps = gpu_pool_steps(ALL_ASSETS)
    return k8s_job_executor.configured(
        {"per_step_k8s_config": {step: _gpu_k8s_config(gpus) for step in gpu_steps}},
        name="k8s_gpu_executor",
    )
