"""One switch for the whole deployment: which models run, where their weights are, and on what hardware.

Every `vf3d` command, the UI, sensors and backfills read the same settings, so a deployment leaves `tiny`
once, without per-run YAML. Each setting comes from, in this order:

1. its environment variable (e.g. `VF3D_PROFILE=full`);
2. the working folder's config file, `<VF3D_HOME>/vf3d.toml` (flat keys, e.g. `profile = "full"`);
3. its default (the `tiny` profile on whatever device is there).

The Dagster resources are built from `EnvVar`s (`deployment_resources`), so the UI's resource page shows
which variable sets each field; `apply_deployment` puts the file's values and the defaults into the
environment of the code location (and of every run it launches) first.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from dagster import EnvVar

from resources.artifacts import default_home
from resources.devices import parse_devices
from resources.gpu import GPU
from resources.models import ModelStore
from vf3d.common.errors import VF3DInputError
from vf3d.baselines.methods import DEFAULT_METHODS, METHODS

CONFIG_FILE = "vf3d.toml"


@dataclass(frozen=True)
class Setting:
    key: str
    """The key in `vf3d.toml`, and the resource field it sets."""
    resource: str
    default: str

    @property
    def env(self) -> str:
        return f"VF3D_{self.key.upper()}"


SETTINGS = (
    Setting("profile", "models", "tiny"),
    Setting("weights_dir", "models", ""),
    Setting("device", "gpu", "auto"),
    Setting("dtype", "gpu", "auto"),
    Setting("offload", "gpu", "none"),
    Setting("vae", "gpu", "full"),
    Setting("cache", "gpu", "none"),
    Setting("compile", "gpu", "none"),
    Setting("attention_backend", "gpu", "native"),
    Setting("gpus", "gpu", "auto"),
    Setting("methods", "jobs", ",".join(DEFAULT_METHODS)),
    Setting("executor", "location", "local"),
)
"""`gpus`: the workstation's devices, one GPU step each at a time ("auto": every visible CUDA device, else one
CPU slot; "0,1,2,3"; "cpu,cpu"; `resources.devices`). `methods`: the methods (`vf3d.baselines.methods.METHODS`)
the shot and training jobs run, comma-separated; every method's assets stay in the UI either way. `executor`:
"local" (every step a process on this machine, a leased device each) or "k8s" (every step a Kubernetes Job, a
GPU step's pod on a GPU node: `vf3d_assets.k8s`)."""

EXECUTORS = ("local", "k8s")


def config_file(home: Path | None = None) -> Path:
    return (home or default_home()) / CONFIG_FILE


def read_config_file(path: Path) -> dict[str, str]:
    """The settings of a `vf3d.toml`; a missing file is empty; an unreadable one, an unknown key or a value
    that is not a string is one `VF3DInputError` naming the file."""
    if not path.is_file():
        return {}
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise VF3DInputError(path, f"not a readable TOML file ({exc})") from None
    known = {s.key for s in SETTINGS}
    for key, value in values.items():
        if key not in known:
            raise VF3DInputError(path, f"unknown setting {key!r}; known: {', '.join(sorted(known))}")
        if not isinstance(value, str):
            raise VF3DInputError(path, f"{key} = {value!r}: expected a quoted string, e.g. {key} = \"{value}\"")
    return values


def apply_deployment(environ: MutableMapping[str, str] = os.environ, home: Path | None = None
                     ) -> dict[str, tuple[str, str]]:
    """Fill every unset `VF3D_*` setting from the config file, else its default. Returns key -> (value, source),
    source being "environment", the config file's path, or "default"."""
    path = config_file(home)
    from_file = read_config_file(path)
    resolved = {}
    for setting in SETTINGS:
        if setting.env in environ:
            resolved[setting.key] = (environ[setting.env], "environment")
            continue
        value, source = (from_file[setting.key], str(path)) if setting.key in from_file else (setting.default,
                                                                                              "default")
        environ[setting.env] = value
        resolved[setting.key] = (value, source)
    return resolved


def check_deployment(environ: MutableMapping[str, str] = os.environ, home: Path | None = None
                     ) -> dict[str, tuple[str, str]]:
    """`apply_deployment`, then check every value before any work starts: a bad one is one `VF3DInputError`
    naming where it came from (the variable or the config file)."""
    from vf3d.models.device import DeviceSettings, check_device_present

    resolved = apply_deployment(environ, home)
    where = {key: source if source != "environment" else next(s.env for s in SETTINGS if s.key == key)
             for key, (_, source) in resolved.items()}
    if resolved["profile"][0] not in ("tiny", "full"):
        raise VF3DInputError(where["profile"], f"profile {resolved['profile'][0]!r}: expected 'tiny' or 'full'")
    if resolved["executor"][0] not in EXECUTORS:
        raise VF3DInputError(where["executor"], f"executor {resolved['executor'][0]!r}: expected one of "
                                                f"{', '.join(EXECUTORS)}")
    try:
        selected_methods(resolved["methods"][0])
    except ValueError as exc:
        raise VF3DInputError(where["methods"], str(exc)) from None
    gpu = {s.key: resolved[s.key][0] for s in SETTINGS if s.resource == "gpu" and s.key != "gpus"}
    try:
        parse_devices(resolved["gpus"][0])
    except ValueError as exc:
        raise VF3DInputError(where["gpus"], str(exc)) from None
    try:
        DeviceSettings(**gpu)
        if resolved["executor"][0] == "local":  # k8s: the GPUs are the step pods', not this machine's
            check_device_present(gpu["device"])
    except ValueError as exc:
        key = str(exc).split(":", 1)[0]
        raise VF3DInputError(where.get(key, "deployment settings"), str(exc)) from None
    return resolved


def selected_methods(value: str | None = None) -> list[str]:
    """The `methods` setting as method keys (default: the environment's, after `apply_deployment`)."""
    value = os.environ.get(next(s.env for s in SETTINGS if s.key == "methods"), ",".join(DEFAULT_METHODS)) \
        if value is None else value
    keys = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in keys if k not in METHODS]
    if unknown or not keys:
        raise ValueError(f"methods: {', '.join(unknown) or '(none)'} not known; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(keys))


def selected_executor() -> str:
    """The `executor` setting (after `apply_deployment`): "local" or "k8s"."""
    value = os.environ.get(next(s.env for s in SETTINGS if s.key == "executor"), "local")
    if value not in EXECUTORS:
        raise ValueError(f"executor: {value!r}; expected one of {', '.join(EXECUTORS)}")
    return value


def deployment_resources() -> dict[str, ModelStore | GPU]:
    """The model store and GPU resources, every deployment field read from its environment variable."""
    apply_deployment()
    fields: dict[str, dict[str, EnvVar]] = {"models": {}, "gpu": {}}
    for setting in SETTINGS:
        if setting.resource in fields:
            fields[setting.resource][setting.key] = EnvVar(setting.env)
    return {"models": ModelStore(**fields["models"]), "gpu": GPU(**fields["gpu"])}
