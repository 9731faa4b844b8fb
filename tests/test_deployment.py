"""One switch for the whole deployment: environment, then <VF3D_HOME>/vf3d.toml, then defaults; Dagster EnvVars."""


import pytest
from dagster import AssetExecutionContext, asset, materialize

from resources import GPU, ModelStore
from resources.deployment import (
    apply_deployment,
    check_deployment,
    deployment_resources,
)
from vf3d.common.errors import VF3DInputError
from vf3d_assets.cli import main


def test_environment_then_config_file_then_defaults(clean_env):
    (clean_env / "vf3d.toml").write_text('profile = "full"\noffload = "group"\nweights_dir = "/data/weights"\n')
    environ = {"VF3D_OFFLOAD": "model"}
    resolved = apply_deployment(environ, clean_env)
    assert resolved["offload"] == ("model", "environment")  # the variable wins over the file
    assert resolved["profile"] == ("full", str(clean_env / "vf3d.toml"))
    assert resolved["weights_dir"] == ("/data/weights", str(clean_env / "vf3d.toml"))
    assert resolved["cache"] == ("none", "default") and resolved["device"] == ("auto", "default")
    assert environ["VF3D_PROFILE"] == "full" and environ["VF3D_CACHE"] == "none"  # for the runs launched later


@pytest.mark.parametrize(("text", "problem"), [('profile = "full"\nprofil = "tiny"\n', "unknown setting 'profil'"),
                                               ("compile = true\n", "expected a quoted string"),
                                               ('profile = "full\n', "not a readable TOML file")])
def test_a_bad_config_file_is_one_line_naming_it(clean_env, text, problem):
    (clean_env / "vf3d.toml").write_text(text)
    with pytest.raises(VF3DInputError, match=f"^{clean_env / 'vf3d.toml'}: .*{problem}"):
        apply_deployment({}, clean_env)


def test_bad_values_name_where_they_came_from(clean_env):
    with pytest.raises(VF3DInputError, match="^VF3D_OFFLOAD: offload: unknown value 'disk'"):
        check_deployment({"VF3D_OFFLOAD": "disk"}, clean_env)
    (clean_env / "vf3d.toml").write_text('profile = "large"\n')
    with pytest.raises(VF3DInputError, match=f"^{clean_env / 'vf3d.toml'}: profile 'large'"):
        check_deployment({}, clean_env)


def test_assets_see_the_deployment_through_envvars(clean_env, monkeypatch):
    (clean_env / "vf3d.toml").write_text('profile = "full"\ncache = "first_block:0.1"\n')
    monkeypatch.setenv("VF3D_DEVICE", "cpu")
    seen = {}

    @asset
    def probe(context: AssetExecutionContext, models: ModelStore, gpu: GPU) -> None:
        seen.update(profile=models.profile, settings=gpu.settings())

    resources = deployment_resources()
    assert resources["models"].profile.env_var_name == "VF3D_PROFILE"  # what the UI shows for the field
    assert materialize([probe], resources=resources).success
    assert seen["profile"] == "full"
    assert seen["settings"].torch_device().type == "cpu" and seen["settings"].cache == "first_block:0.1"


def test_cli_config_shows_each_setting_and_its_source_and_refuses_bad_ones(clean_env, monkeypatch, capsys):
    (clean_env / "vf3d.toml").write_text('dtype = "bf16"\n')
    monkeypatch.setenv("VF3D_PROFILE", "full")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "profile            full" in out and "VF3D_PROFILE <- environment" in out
    assert f"VF3D_DTYPE <- {clean_env / 'vf3d.toml'}" in out and "VF3D_OFFLOAD <- default" in out
    monkeypatch.setenv("VF3D_COMPILE", "everything")
    assert main(["stale"]) == 2
    assert capsys.readouterr().err.strip() == ("error: VF3D_COMPILE: compile: unknown value 'everything'; use one of "
                                               "none, transformer")


def test_demo_on_the_full_profile_without_weights_is_one_line_before_any_work(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("VF3D_WEIGHTS_DIR", str(clean_env / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(clean_env / "hub"))
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(clean_env / "torch-hub"))
    assert main(["demo", "--profile", "full"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {clean_env / 'weights'}: ") and "\n" not in err
    assert "full-profile component(s) missing (transformer" in err and "vf3d check-weights" in err
    assert not (clean_env / "artifacts").exists()  # nothing ran


def test_the_full_demo_asks_for_the_official_ggi_weights_before_any_work(clean_env, monkeypatch, capsys):
    """Every checkpoint in place, but GGI training is a 10,000-step run on videos: the demo wants them imported."""
    import torch

    from evaluation.published import write_full_metric_layout
    from vf3d.models.hed import HED_FILENAME, hed_network_class
    from vf3d.models.published import write_full_layout

    weights = clean_env / "weights"
    write_full_layout(weights, "shrunk")
    write_full_metric_layout(weights / "metrics", "shrunk")
    torch.save(hed_network_class()().state_dict(), weights / HED_FILENAME)
    monkeypatch.setenv("VF3D_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("HF_HUB_CACHE", str(clean_env / "hub"))
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(clean_env / "torch-hub"))
    capsys.readouterr()  # (the warnings of building the layout above)
    assert main(["demo", "--profile", "full"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ggi_weights: ") and "\n" not in err and "checkpoint-1350" in err
    assert not (clean_env / "artifacts").exists()  # nothing ran
