"""GGI on the tiny CogVideoX components: the conditioning layout, the exact widening, sampling, full-layout loading."""

import copy
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from PIL import Image
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file

from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline, conditioning_latents, encode_video, model_input
from vf3d.models.cogvideo import (
    GWTF_ADAPTER,
    ggi_state_dict,
    load_full_ggi,
    save_full_layout,
    tiny_cogvideo,
    widen_patch_embed,
)
from vf3d.models.weights import MissingWeightsError

H, W = 48, 64
SEGMENT = 46  # the real layout: 46 edge maps + 3 repeats = 49 frames = 13 latent frames
TINY = GGI_PRESETS["tiny"]


def _image(seed: int, shape=(H, W, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


FIRST, LAST = _image(1), _image(2)
EDGES = [_image(10 + i, (H, W)) for i in range(SEGMENT)]


@pytest.fixture(scope="module")
def components():
    return tiny_cogvideo(0)


@pytest.fixture(scope="module")
def ggi(components):
    pipe = GGIPipeline(components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(ggi, settings=TINY, seed=0, edges=EDGES, **kwargs):
    return ggi("a stone house, sks style", FIRST, LAST, edges, H, W, settings=settings,
               generator=torch.Generator().manual_seed(seed), **kwargs)


@torch.no_grad()
def test_image_latents_hold_both_anchors_at_the_ends_and_exact_zeros_between(components):
    image_latents, edge_latents = conditioning_latents(components.vae, FIRST, LAST, EDGES, num_frames=49)
    assert image_latents.shape == edge_latents.shape == (1, 13, 16, H // 8, W // 8)
    assert torch.equal(image_latents[:, :1], encode_video(components.vae, [FIRST]))
    assert torch.equal(image_latents[:, -1:], encode_video(components.vae, [LAST]))
    assert torch.count_nonzero(image_latents[:, 1:-1]) == 0
    assert torch.count_nonzero(image_latents[:, 0]) > 0 and torch.count_nonzero(image_latents[:, -1]) > 0


@torch.no_grad()
def test_edge_latents_encode_the_46_maps_plus_three_repeats_of_the_last(components):
    _, edge_latents = conditioning_latents(components.vae, FIRST, LAST, EDGES, num_frames=49)
    assert torch.equal(edge_latents, encode_video(components.vae, EDGES + [EDGES[-1]] * 3))
    padded_otherwise = encode_video(components.vae, EDGES + [np.zeros((H, W), np.uint8)] * 3)
    assert not torch.allclose(edge_latents[:, -1], padded_otherwise[:, -1])


@torch.no_grad()
def test_widened_patch_embedding_reproduces_the_base_model_exactly():
    base = tiny_cogvideo(0, widened=False).transformer
    wide = widen_patch_embed(copy.deepcopy(base), 16)
    assert (base.config.in_channels, wide.config.in_channels) == (32, 48)
    assert torch.count_nonzero(wide.patch_embed.proj.weight[:, 32:]) == 0
    g = torch.Generator().manual_seed(0)
    noisy, image = torch.randn(2, 1, 13, 16, 6, 8, generator=g)
    text = torch.randn(1, 226, 32, generator=g)
    rotary = GGIPipeline(tiny_cogvideo(0, widened=False)).pipe._prepare_rotary_positional_embeddings(H, W, 13, "cpu")
    run = lambda model, x: model(hidden_states=x, encoder_hidden_states=text, timestep=torch.tensor([500]),
                                 image_rotary_emb=rotary, return_dict=False)[0]
    expected = run(base, model_input(noisy, image))
    assert torch.equal(run(wide, model_input(noisy, image, torch.zeros_like(image))), expected)
    assert torch.equal(run(wide, model_input(noisy, image, torch.randn_like(image))), expected)  # zero weights


def test_tiny_segment_has_the_segment_frames_and_is_deterministic(ggi):
    out = _run(ggi)
    assert out.method == "ggi" and len(out.frames) == SEGMENT
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in out.frames)
    again = _run(ggi)
    assert all(np.array_equal(a, b) for a, b in zip(out.frames, again.frames))
    other_seed = _run(ggi, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(out.frames, other_seed.frames))


def test_warped_noise_is_the_initial_latent(ggi):
    noise = torch.randn(13, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(5))
    out = _run(ggi, latents=noise, record_steps=True)
    assert len(out.step_inputs) == TINY.num_inference_steps
    assert torch.equal(out.step_inputs[0], noise[None] * ggi.pipe.scheduler.init_noise_sigma)


def test_bidirectional_runs_and_differs_from_ggi(ggi):
    bidirectional = replace(TINY, method="bidirectional")
    out = _run(ggi, settings=bidirectional)
    assert out.method == "bidirectional" and len(out.frames) == SEGMENT
    ggi_frames = _run(ggi).frames
    assert not all(np.array_equal(a, b) for a, b in zip(out.frames, ggi_frames))
    # The widened model with untrained (zero) edge weights samples exactly as the base I2V model does.
    base = GGIPipeline(tiny_cogvideo(0, widened=False))
    base.set_progress_bar_config(disable=True)
    base_frames = _run(base, settings=bidirectional, edges=None).frames
    assert all(np.array_equal(a, b) for a, b in zip(out.frames, base_frames))


def test_a_short_segment_variant_runs(ggi):
    short = replace(TINY, num_frames=9, segment_frames=6)
    assert len(_run(ggi, settings=short, edges=EDGES[:6]).frames) == 6


@pytest.mark.parametrize("change, names", [
    ({"height": 40}, "height=40"),
    ({"edges": EDGES[:45]}, "edge_frames"),
    ({"latents": torch.zeros(12, 16, 6, 8)}, "latents"),
    ({"first": _image(1, (H, W + 16, 3))}, "first_image"),
])
def test_bad_inputs_are_named(ggi, change, names):
    with pytest.raises(ValueError, match=names):
        ggi("p", change.get("first", FIRST), LAST, change.get("edges", EDGES), change.get("height", H), W,
            latents=change.get("latents"), settings=TINY)


def test_ggi_method_needs_the_widened_transformer():
    with pytest.raises(ValueError, match="widened"):
        _run(GGIPipeline(tiny_cogvideo(0, widened=False)))


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_paper_sampler_is_the_models_own_scheduler_and_dpm_is_an_option(ggi, components):
    assert GGI_PRESETS["paper"].sampler == "model"
    assert type(components.scheduler) is CogVideoXDDIMScheduler  # CogVideoX-5b-I2V's scheduler_config.json
    own = _run(ggi, replace(TINY, sampler="model"))
    assert type(ggi.pipe.scheduler) is CogVideoXDDIMScheduler
    dpm = _run(ggi, replace(TINY, sampler="dpm"))
    assert type(ggi.pipe.scheduler) is CogVideoXDPMScheduler
    assert ggi.pipe.scheduler.config.timestep_spacing == "trailing"
    assert not all(np.array_equal(a, b) for a, b in zip(own.frames, dpm.frames))
    with pytest.raises(ValueError, match="settings.sampler='euler'"):
        _run(ggi, replace(TINY, sampler="euler"))


# Transcribed from the official inference, KIMGEONUNG/VideoFrom3D `ggi.py`: l. 202 `--num_inference_steps`
# default 30; l. 194 `--guidance_scale` default 6.0; l. 104 `CogVideoXImageToVideoPipeline.from_pretrained(model_path)`
# (l. 191: "THUDM/CogVideoX-5B-I2V") keeps the model folder's scheduler, whose `scheduler/scheduler_config.json`
# names CogVideoXDDIMScheduler, the DPM replacement being commented out (l. 133-135); l. 168-169 leave
# `use_dynamic_cfg` commented out, so `mypipes/pipe_intp2.py` l. 611's default False: constant CFG.
OFFICIAL_STEPS, OFFICIAL_GUIDANCE, OFFICIAL_SCHEDULER = 30, 6.0, "CogVideoXDDIMScheduler"


def test_paper_preset_samples_with_ddim_30_steps_and_cfg_6(ggi, monkeypatch):
    paper = GGI_PRESETS["paper"]
    assert (paper.num_inference_steps, paper.guidance_scale, paper.sampler) == (OFFICIAL_STEPS, OFFICIAL_GUIDANCE,
                                                                                "model")
    scales, steps = [], []
    predict = ggi.predict
    # predict(latents, t, prompt_embeds, negative_prompt_embeds, directions, rotary, guidance_scale)
    monkeypatch.setattr(ggi, "predict", lambda *args: scales.append((args[3] is not None, args[-1])) or predict(*args))
    monkeypatch.setattr(ggi, "on_step", lambda step, total: steps.append(step))
    _run(ggi, settings=paper)
    assert type(ggi.pipe.scheduler).__name__ == OFFICIAL_SCHEDULER
    assert steps == list(range(1, OFFICIAL_STEPS + 1)) and len(ggi.pipe.scheduler.timesteps) == OFFICIAL_STEPS
    assert scales == [(True, OFFICIAL_GUIDANCE)] * OFFICIAL_STEPS  # CFG at every step, constant (not dynamic)


def test_full_loader_loads_the_saved_layout(components, tmp_path):
    folder, weights, lora = tmp_path / "CogVideoX-5b-I2V", tmp_path / "ggi.safetensors", tmp_path / "gwtf.safetensors"
    save_full_layout(components, folder, weights, lora)
    assert load_file(weights)["patch_embed.proj.weight"].shape[1] == 48
    loaded = load_full_ggi(folder, weights, lora, dtype=torch.float32)
    assert loaded.transformer.config.in_channels == 48
    assert _state_equal(ggi_state_dict(loaded.transformer), ggi_state_dict(components.transformer))
    for name in ("vae", "text_encoder"):
        assert _state_equal(getattr(loaded, name).state_dict(), getattr(components, name).state_dict())
    assert loaded.tokenizer("a house").input_ids == components.tokenizer("a house").input_ids
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert type(loaded.scheduler) is type(components.scheduler) is CogVideoXDDIMScheduler  # the folder's own
    lora_file = {k.removeprefix("transformer."): v for k, v in load_file(lora).items()}
    lora_loaded = get_peft_model_state_dict(loaded.transformer, adapter_name=GWTF_ADAPTER)
    assert lora_file and _state_equal({k: v for k, v in lora_loaded.items()}, lora_file)
    plain = load_full_ggi(folder, weights, None, dtype=torch.float32)
    assert not getattr(plain.transformer, "peft_config", None)


def test_missing_components_are_named_with_their_paths(components, tmp_path):
    folder, weights = tmp_path / "CogVideoX-5b-I2V", tmp_path / "ggi.safetensors"
    save_full_layout(components, folder, weights)
    shutil.rmtree(folder / "vae")
    weights.unlink()
    with pytest.raises(MissingWeightsError) as error:
        load_full_ggi(folder, weights, tmp_path / "no-lora.safetensors")
    names = [name for name, _ in error.value.missing]
    assert names == ["CogVideoX-5b-I2V vae", "GGI transformer weights (fine-tuned, widened)",
                     "Go-with-the-Flow LoRA (CogVideoX-5B I2V)"]
    message = str(error.value)
    assert str(folder / "vae" / "config.json") in message and str(weights) in message and "no-lora" in message


def _shot(folder, segments: list[list[int]]) -> None:
    """A guidance folder (meta, edge maps, still-camera flows) and anchors for the tiny GGI at 48x64."""
    (folder / "edges").mkdir()
    (folder / "flows").mkdir()
    (folder / "anchors" / "anchors").mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"height": H, "width": W, "segments": segments}))
    for i in range(segments[-1][1] + 1):
        Image.fromarray(_image(200 + i, (H, W))).save(folder / "edges" / f"{i:05d}.png")
    for k, (start, end) in enumerate(segments):
        np.savez(folder / "flows" / f"seg{k:03d}.npz", forward=np.zeros((end - start, H, W, 2), np.float32),
                 forward_valid=np.ones((end - start, H, W), bool))
    for i in [segments[0][0]] + [end for _, end in segments]:
        Image.fromarray(_image(300 + i)).save(folder / "anchors" / "anchors" / f"{i:05d}.png")


@pytest.mark.parametrize("chain_from, duplicate_joins", [("generated", False), ("generated", True),
                                                         ("anchor", False)])
def test_segments_chain_through_the_tiny_ggi(ggi, tmp_path, chain_from, duplicate_joins):
    """Three segments (6, 6 and 3 frames; 9 generated each) through `generate_video` and the real tiny GGI with
    its warped noise. Segment k+1 starts from segment k's last generated frame (official `ggi.py` l. 302:
    `start = videos[-1]`) or, as an option, from the SAG anchor. The video keeps each join's boundary frame
    once (vf3d's deliberate default), or twice with `duplicate_joins` (official l. 299-301: all `videos[:-3]`
    of every segment saved)."""
    from vf3d.ggi.inbetween import generate_video, segment_noise

    segments = [[0, 5], [5, 10], [10, 12]]
    _shot(tmp_path, segments)
    settings = replace(TINY, num_frames=9, segment_frames=6, chain_from=chain_from)
    calls = []

    def recording_ggi(prompt, first, last, edges, height, width, latents, settings, generator):
        out = ggi(prompt, first, last, edges, height, width, latents=latents, settings=settings, generator=generator)
        calls.append((first.copy(), out))
        return out

    video = generate_video(
        recording_ggi, tmp_path, tmp_path / "anchors", lambda k: segment_noise(
            tmp_path, k, 16, settings, 0.5, torch.Generator().manual_seed(k)), lambda e: e, settings, "a house",
        lambda k: torch.Generator().manual_seed(k), duplicate_joins=duplicate_joins)
    anchors = [np.asarray(Image.open(tmp_path / "anchors" / "anchors" / f"{i:05d}.png")) for i in (0, 5, 10)]
    assert np.array_equal(calls[0][0], anchors[0])
    for k in (1, 2):
        start = calls[k - 1][1].last_frame if chain_from == "generated" else anchors[k]
        assert np.array_equal(calls[k][0], start)
    frames = [out.frames[: end - begin + 1] for (_, out), (begin, end) in zip(calls, segments)]
    assert [len(f) for f in frames] == [6, 6, 3]
    expected = frames[0] + frames[1] + frames[2] if duplicate_joins else frames[0] + frames[1][1:] + frames[2][1:]
    assert len(video) == (15 if duplicate_joins else 13)  # 13 trajectory frames; + 1 per join, officially
    assert all(np.array_equal(a, b) for a, b in zip(video, expected))


def test_edges_steer_sampling_once_the_edge_weights_are_trained():
    """The zero-initialised edge weights make edges inert (the base model); trained (non-zero) weights make the
    edge maps change the video, and dropping the edge channels would make them inert again."""
    trained = tiny_cogvideo(0)
    with torch.no_grad():
        proj = trained.transformer.patch_embed.proj
        base_in = 2 * trained.transformer.config.out_channels
        proj.weight[:, base_in:] = torch.randn(proj.weight[:, base_in:].shape,
                                               generator=torch.Generator().manual_seed(3)) * 0.5
    pipe = GGIPipeline(trained)
    pipe.set_progress_bar_config(disable=True)
    other_edges = [_image(100 + i, (H, W)) for i in range(SEGMENT)]
    with_edges, with_other = _run(pipe).frames, _run(pipe, edges=other_edges).frames
    assert not all(np.array_equal(a, b) for a, b in zip(with_edges, with_other))
    untrained = GGIPipeline(tiny_cogvideo(0))
    untrained.set_progress_bar_config(disable=True)
    assert all(np.array_equal(a, b) for a, b in zip(_run(untrained).frames, _run(untrained, edges=other_edges).frames))
