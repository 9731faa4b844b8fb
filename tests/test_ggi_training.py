"""GGI training on tiny CogVideoX: the loss falls, and an interrupted run resumes from its checkpoint."""

import numpy as np
import pytest
import torch

from vf3d.ggi.training import GGI_TRAINING_PRESETS, GGITrainer, TrainingClip, latest_checkpoint, load_clip, save_clip
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
