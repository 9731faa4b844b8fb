"""Device settings and the GPU resource, on this CPU machine."""

import shutil
from pathlib import Path

import pytest
import torch

from resources import GPU
from vf3d.models.device import DeviceSettings, GPUOutOfMemoryError

torch.set_num_threads(1)


def test_auto_resolves_to_cpu_fp32_without_cuda():
    settings = DeviceSettings()
    assert settings.torch_device() == torch.device("cpu")
    assert settings.torch_dtype() == torch.float32
    assert DeviceSettings(dtype="bf16").torch_dtype() == torch.bfloat16
    a, b = DeviceSettings(seed=3).generator(), DeviceSettings(seed=3).generator()
    assert a.device == torch.device("cpu")
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))


@pytest.mark.parametrize(("fields", "name"), [({"dtype": "fp8"}, "dtype"), ({"device": "tpu"}, "device"),
                                              ({"offload": "disk"}, "offload"), ({"vae": "tiles"}, "vae"),
                                              ({"cache": "faster_cache"}, "cache"),
                                              ({"cache": "first_block:x"}, "cache"), ({"compile": "all"}, "compile"),
                                              ({"attention_backend": "fast"}, "attention_backend")])
def test_unknown_values_name_the_field(fields, name):
    with pytest.raises(ValueError, match=f"^{name}: unknown value"):
        DeviceSettings(**fields)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="device: 'cuda'.*device='auto'"):
        DeviceSettings(device="cuda").torch_device()
    with pytest.raises(ValueError, match="offload: 'model'"):
        DeviceSettings(offload="model").place(object())


def test_place_a_tiny_diffusers_pipeline():
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 8),
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    settings = DeviceSettings(vae="tiling")  # no vae on this pipeline: tiling is skipped
    pipeline = settings.place(DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10)))
    assert pipeline.device == torch.device("cpu")
    images = pipeline(batch_size=1, num_inference_steps=2, generator=settings.generator(), output_type="np").images
    assert images.shape == (1, 8, 8, 3)


def test_out_of_memory_becomes_advice():
    settings = DeviceSettings()
    with pytest.raises(GPUOutOfMemoryError) as info:
        with settings.oom_advice("anchors", 720, 480):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    message = str(info.value)
    assert message.startswith("anchors: out of GPU memory at 720x480")
    assert "offload='none'" in message and "1) offload='model'" in message and "352x240" in message  # halved, multiples of 16
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)

    with pytest.raises(GPUOutOfMemoryError, match=r"1\) a lower resolution"):  # nothing else left to try
        with DeviceSettings(offload="sequential", vae="tiling").oom_advice("video", 720, 480):
            raise RuntimeError("HIP out of memory")
    with pytest.raises(RuntimeError, match="^shape mismatch$"):  # other errors pass unchanged
        with settings.oom_advice("anchors", 720, 480):
            raise RuntimeError("shape mismatch")


def test_gpu_resource_round_trips_its_fields():
    fields = {"device": "cpu", "dtype": "bf16", "offload": "model", "vae": "tiling+slicing", "cache": "first_block:0.1",
              "compile": "transformer", "attention_backend": "_native_math", "seed": 7}
    gpu = GPU(**fields)
    assert gpu.settings() == DeviceSettings(**fields)
    assert gpu.torch_dtype() == torch.bfloat16
    assert GPU().settings() == DeviceSettings()


def test_dagster_yaml_limits_the_gpu_pool(tmp_path):
    from dagster import DagsterInstance

    shutil.copy(Path(__file__).parents[1] / "deploy" / "dagster.yaml", tmp_path)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
