"""GGI training on tiny CogVideoX: the loss falls, and an interrupted run resumes from its checkpoint."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vf3d.ggi.training import (GGI_TRAINING_PRESETS, GGITrainer, TrainingClip, latest_checkpoint, load_clip, save_clip,
                               training_run_key)
from vf3d.models.cogvideo import tiny_cogvideo


def _clip() -> TrainingClip:
    rng = np.random.default_rng(0)
    h, w, n = 48, 64, 9
    base = rng.integers(0, 255, (h, w + n, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(base[:, i:i + w]) for i in range(n)]  # a pan: content moves left 1 px/frame
    flows = np.zeros((n - 1, h, w, 2), np.float32)
    flows[..., 0] = -1.0
    valid = np.ones((n - 1, h, w), bool)
    valid[:, :, 0] = False
    return TrainingClip(frames, flows, valid, [f[..., 1] for f in frames])


def _trainer(steps=6):
    preset = GGI_TRAINING_PRESETS["tiny"]
    return GGITrainer(tiny_cogvideo(0), preset.__class__(**{**preset.__dict__, "steps": steps}))


def test_clip_round_trip(tmp_path):
    clip = _clip()
    save_clip(clip, tmp_path / "clip")
    back = load_clip(tmp_path / "clip")
    assert all(np.array_equal(a, b) for a, b in zip(clip.frames, back.frames))
    assert np.array_equal(clip.flows, back.flows) and np.array_equal(clip.valid, back.valid)


def test_a_few_steps_lower_the_loss(tmp_path):
    trainer = _trainer(steps=12)
    batches = trainer.prepare_all([_clip()])
    before = trainer.evaluate(batches)
    trainer.train(None, tmp_path / "run", batches=batches)
    assert trainer.evaluate(batches) < before


class Killed(Exception):
    pass


def test_interrupted_training_resumes_from_its_last_checkpoint(tmp_path):
    reference = _trainer().train([_clip()], tmp_path / "uninterrupted")

    def kill_at_step_3(step, loss):
        if step == 3:
            raise Killed
    with pytest.raises(Killed):
        _trainer().train([_clip()], tmp_path / "run", kill_at_step_3)
    assert latest_checkpoint(tmp_path / "run").name == "checkpoint-000002"
    resumed = _trainer()
    losses = resumed.train([_clip()], tmp_path / "run")
    assert resumed.step == 6 and len(losses) == 6
    np.testing.assert_allclose(losses, reference, rtol=1e-4)
    resumed.export(tmp_path / "ggi.safetensors", losses)
    from vf3d.models.cogvideo import load_ggi_weights
    fresh = tiny_cogvideo(1)
    load_ggi_weights(fresh.transformer, tmp_path / "ggi.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(fresh.transformer.state_dict().values(),
                                                 resumed.components.transformer.state_dict().values()))


def test_new_inputs_retrain_from_the_start_and_old_runs_are_removed(tmp_path):
    settings = _trainer().settings
    first_key = training_run_key("clips-v1", settings, "tiny")
    first = _trainer()
    first_losses = first.train([_clip()], tmp_path / "checkpoints", run_key=first_key)
    assert first.step == 6 and len(first_losses) == 6
    # Same inputs: the finished run is resumed, nothing is trained again.
    again = _trainer()
    assert again.train([_clip()], tmp_path / "checkpoints", run_key=first_key) == first_losses
    # Other clips (another data version): a fresh run from step 0, with other weights.
    other = TrainingClip([np.ascontiguousarray(f[::-1]) for f in _clip().frames], *(_clip().__dict__[k] for k in
                         ("flows", "valid", "structure")))
    second_key = training_run_key("clips-v2", settings, "tiny")
    assert second_key != first_key
    second = _trainer()
    losses = second.train([other], tmp_path / "checkpoints", run_key=second_key)
    assert len(losses) == 6 and losses[0] != first_losses[0]
    assert not all(torch.equal(a, b) for a, b in zip(first.components.transformer.state_dict().values(),
                                                     second.components.transformer.state_dict().values()))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [f"run-{second_key}"]
    # Changed settings are new inputs too.
    assert training_run_key("clips-v1", settings.__class__(**{**settings.__dict__, "steps": 7}), "tiny") != first_key


def test_a_malicious_training_state_is_refused(tmp_path):
    trainer = _trainer(steps=2)
    trainer.train([_clip()], tmp_path / "run")
    checkpoint = latest_checkpoint(tmp_path / "run")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"optimizer": Payload()}, checkpoint / "training_state.pt")
    with pytest.raises(pickle.UnpicklingError):
        _trainer(steps=2).resume(checkpoint, torch.Generator())
    assert not marker.exists()


def test_every_torch_load_is_weights_only():
    root = Path(__file__).resolve().parents[1]
    loads = [(p, line) for folder in ("vf3d", "evaluation", "resources", "vf3d_assets", "scripts")
             for p in (root / folder).rglob("*.py") for line in p.read_text().splitlines() if "torch.load(" in line]
    assert loads, "the scan found no torch.load at all"
    assert [f"{p}: {line.strip()}" for p, line in loads if "weights_only=True" not in line] == []


class _Oracle(torch.nn.Module):
    """Stands in for the transformer: returns the exact v-prediction target, plus `delta`, and records its input."""

    def __init__(self, x0, noise, scheduler, delta=0.0):
        super().__init__()
        self.x0, self.noise, self.scheduler, self.delta, self.inputs = x0, noise, scheduler, delta, []

    def forward(self, hidden_states, timestep, **kwargs):
        self.inputs.append(hidden_states)
        ab = self.scheduler.alphas_cumprod[timestep].float()
        v = ab.sqrt() * self.noise - (1 - ab).sqrt() * self.x0  # written out here, not taken from the trainer
        return (v + self.delta,)


def test_loss_is_the_v_prediction_error_weighted_by_one_over_one_minus_alpha_bar():
    trainer = _trainer()
    batch = trainer.prepare(_clip(), torch.Generator().manual_seed(0))
    zeros = torch.zeros_like(batch["anchor_pixels"])
    for t in (torch.tensor([50]), torch.tensor([500]), torch.tensor([950])):
        trainer.components.transformer = _Oracle(batch["x0"], batch["noise"], trainer.pipe.scheduler)
        assert trainer.loss(batch, t, torch.tensor(0.0), zeros).item() < 1e-10  # exact v: no loss
        # An error d in v is an error sqrt(1 - alpha_bar) d in x0; the weight 1/(1 - alpha_bar) makes it d^2 at every t.
        trainer.components.transformer = _Oracle(batch["x0"], batch["noise"], trainer.pipe.scheduler, delta=0.3)
        assert trainer.loss(batch, t, torch.tensor(0.0), zeros).item() == pytest.approx(0.09, rel=1e-3)


def _trainer_with(**changes):
    preset = GGI_TRAINING_PRESETS["tiny"]
    return GGITrainer(tiny_cogvideo(0), preset.__class__(**{**preset.__dict__, **changes}))


def test_anchor_noise_augmentation_is_log_normal_on_the_anchor_frames_only():
    trainer = _trainer_with(anchor_noise_space="latent")
    batch = trainer.prepare(_clip(), torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    sigmas = torch.stack([trainer._draw(batch, generator)[1] for _ in range(4000)])
    assert float(sigmas.log().mean()) == pytest.approx(-3.0, abs=0.03)
    assert float(sigmas.log().std()) == pytest.approx(0.5, abs=0.03)
    oracle = _Oracle(batch["x0"], batch["noise"], trainer.pipe.scheduler)
    trainer.components.transformer = oracle
    augment = torch.ones_like(batch["image_latents"])
    trainer.loss(batch, torch.tensor([500]), torch.tensor(0.25), augment)
    channels = batch["x0"].shape[2]
    seen = oracle.inputs[-1][:, :, channels:2 * channels]
    change = (seen - batch["image_latents"]).abs().amax(dim=(0, 2, 3, 4))
    assert torch.allclose(change[[0, -1]], torch.tensor(0.25)) and change[1:-1].max() == 0


def test_paper_augments_the_anchors_in_pixel_space_before_encoding():
    from vf3d.ggi.pipeline import encode_pixels

    trainer = _trainer()
    assert GGI_TRAINING_PRESETS["paper"].anchor_noise_space == "pixel"
    batch = trainer.prepare(_clip(), torch.Generator().manual_seed(0))
    t, sigma, augment = trainer._draw(batch, torch.Generator().manual_seed(2))
    assert augment.shape == batch["anchor_pixels"].shape == (2, 3, 48, 64)
    oracle = _Oracle(batch["x0"], batch["noise"], trainer.pipe.scheduler)
    trainer.components.transformer = oracle
    trainer.loss(batch, t, torch.tensor(0.3), augment)
    channels = batch["x0"].shape[2]
    seen = oracle.inputs[-1][:, :, channels:2 * channels]
    first = encode_pixels(trainer.components.vae, (batch["anchor_pixels"][0] + 0.3 * augment[0])[None, :, None])
    last = encode_pixels(trainer.components.vae, (batch["anchor_pixels"][1] + 0.3 * augment[1])[None, :, None])
    torch.testing.assert_close(seen[:, :1], first)
    torch.testing.assert_close(seen[:, -1:], last)
    assert seen[:, 1:-1].abs().max() == 0


def test_clips_train_on_46_frames_and_3_repeats_as_at_inference():
    trainer = _trainer()  # tiny: 6 real frames + 3 repeats = 9
    clip = _clip()  # 9 distinct frames
    batch = trainer.prepare(clip, torch.Generator().manual_seed(0))
    from vf3d.ggi.pipeline import encode_video
    assert torch.equal(batch["x0"], encode_video(trainer.components.vae, [*clip.frames[:6], *[clip.frames[5]] * 3]))
    assert torch.equal(batch["image_latents"][:, -1:], encode_video(trainer.components.vae, [clip.frames[5]]))
    assert GGI_TRAINING_PRESETS["paper"].real_frames == 46 and GGI_TRAINING_PRESETS["paper"].num_frames == 49


def test_recipe_accumulates_clips_clips_gradients_and_follows_the_warmup_cosine_schedule(monkeypatch):
    import math

    paper = GGI_TRAINING_PRESETS["paper"]
    assert (paper.gradient_accumulation, paper.warmup_steps, paper.schedule_steps, paper.max_grad_norm,
            paper.lr_scheduler) == (4, 800, 10_000, 1.0, "cosine_with_restarts")
    trainer = _trainer_with(steps=5, gradient_accumulation=3, warmup_steps=2, schedule_steps=8, checkpoint_every=100)
    clips = [_clip()]
    batches = trainer.prepare_all(clips)
    calls, norms, lrs = [], [], []
    real_loss, real_clip, real_step = trainer.loss, torch.nn.utils.clip_grad_norm_, trainer.optimizer.step
    monkeypatch.setattr(trainer, "loss", lambda *a: calls.append(1) or real_loss(*a))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: norms.append(max_norm) or
                        real_clip(params, max_norm))
    monkeypatch.setattr(trainer.optimizer, "step", lambda: lrs.append(trainer.optimizer.param_groups[0]["lr"]) or
                        real_step())
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        trainer.train(None, Path(folder), batches=batches)
    assert len(calls) == 5 * 3 and norms == [1.0] * 5
    base = trainer.settings.learning_rate

    def expected(step):  # linear warm-up, then one cosine cycle to 0 at schedule_steps (diffusers' formula)
        if step < 2:
            return base * step / 2
        progress = (step - 2) / (8 - 2)
        return base * 0.5 * (1 + math.cos(math.pi * (progress % 1.0)))
    assert lrs == pytest.approx([expected(s) for s in range(5)])


def test_half_precision_weights_train_under_autocast_as_accelerate_mixed_precision():
    trainer = _trainer()
    batch = trainer.prepare(_clip(), torch.Generator().manual_seed(0))
    seen = []

    class Probe(_Oracle):
        def forward(self, hidden_states, timestep, **kwargs):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().forward(hidden_states, timestep, **kwargs)

    zeros = torch.zeros_like(batch["anchor_pixels"])
    trainer.components.transformer = Probe(batch["x0"], batch["noise"], trainer.pipe.scheduler)
    trainer.loss(batch, torch.tensor([500]), torch.tensor(0.0), zeros)  # fp32 weights: no autocast
    half = {**batch, "x0": batch["x0"].bfloat16(), "noise": batch["noise"].bfloat16()}
    trainer.components.transformer = Probe(half["x0"], half["noise"], trainer.pipe.scheduler)
    trainer.loss(half, torch.tensor([500]), torch.tensor(0.0), zeros.bfloat16())
    assert seen == [False, True] and GGI_TRAINING_PRESETS["paper"].autocast
