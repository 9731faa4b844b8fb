"""Distribution alignment (paper Sec. 3.2): a style LoRA on FLUX and its HED ControlNet.

LoRA (rank 16) on the transformer's first 23 blocks (19 double-stream + 4 single-stream) and on the
ControlNet, trained on the reference image(s) and their HED maps under unique identifier prompts with the
rectified-flow loss (target = noise - x, z_t = (1 - t) x + t noise). One LoRA may hold several styles, one
identifier each (paper 'Style Variation'). Saved with the diffusers LoRA conventions:
`pytorch_lora_weights.safetensors` (transformer, `FluxControlNetPipeline.load_lora_weights`) plus
`controlnet_lora.safetensors` and `style_lora.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import FluxControlNetPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import load_file, save_file

from vf3d.common.atomic import atomic_dir
from vf3d.models.flux import FluxComponents

ATTENTION = r"attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
FEED_FORWARD = r"ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2)|proj_mlp|proj_out"
CONTROLNET_LORA_FILE, META_FILE = "controlnet_lora.safetensors", "style_lora.json"


@dataclass(frozen=True)
class LoRASettings:
    """Style LoRA training settings (paper Sec. 4 and the official code)."""

    rank: int = 16
    """LoRA rank (paper: 16); alpha = rank, so the LoRA scale is 1."""
    double_blocks: int = 19
    """LoRA on the first N double-stream blocks (paper: all 19)."""
    single_blocks: int = 4
    """... and on the first N single-stream blocks (paper: 4, making 23 blocks)."""
    steps: int = 400
    """Optimisation steps (paper: 400)."""
    learning_rate: float = 1e-4
    """AdamW learning rate (official code: 1e-4)."""
    resolution: int = 512
    """Training images are resized so their longer side is this, rounded to a multiple of 16."""
    guidance_scale: float = 1.0
    """Distilled guidance value fed to FLUX-dev while training."""
    seed: int = 0
    eval_samples: int = 4
    """Fixed (noise, t) pairs per reference for the before/after evaluation loss."""


LORA_PRESETS = {"paper": LoRASettings(), "tiny": LoRASettings(steps=30, learning_rate=1e-3, resolution=64)}


def transformer_targets(settings: LoRASettings) -> str:
    double = "|".join(str(i) for i in range(settings.double_blocks))
    single = "|".join(str(i) for i in range(settings.single_blocks))
    return rf"^(transformer_blocks\.({double})|single_transformer_blocks\.({single}))\.({ATTENTION}|{FEED_FORWARD})$"


def controlnet_targets() -> str:
    return rf"^(transformer_blocks|single_transformer_blocks)\.\d+\.({ATTENTION}|{FEED_FORWARD})$"


def lora_config(settings: LoRASettings, target: str) -> LoraConfig:
    return LoraConfig(r=settings.rank, lora_alpha=settings.rank, init_lora_weights="gaussian", target_modules=target)


@dataclass
class StyleExample:
    """One reference: its image, its HED map (RGB, same size) and its identifier prompt."""

    image: Image.Image
    hed: Image.Image
    prompt: str


@dataclass
class TrainingResult:
    losses: list[float]
    eval_loss_before: float
    eval_loss_after: float
    prompts: list[str] = field(default_factory=list)

    @property
    def improved(self) -> bool:
        return self.eval_loss_after < self.eval_loss_before


def training_size(image: Image.Image, resolution: int, multiple: int = 16) -> tuple[int, int]:
    scale = resolution / max(image.size)
    return (max(multiple, round(image.width * scale / multiple) * multiple),
            max(multiple, round(image.height * scale / multiple) * multiple))


class StyleLoRATrainer:
    """Adds the LoRA adapters to FLUX components and trains them on style examples."""

    def __init__(self, components: FluxComponents, settings: LoRASettings):
        self.components, self.settings = components, settings
        self.pipe: FluxControlNetPipeline = components.pipeline()
        self.pipe.set_progress_bar_config(disable=True)
        for model in (components.transformer, components.controlnet, components.vae, components.text_encoder,
                      components.text_encoder_2):
            model.requires_grad_(False)
        components.transformer.add_adapter(lora_config(settings, transformer_targets(settings)))
        components.controlnet.add_adapter(lora_config(settings, controlnet_targets()))

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in (self.components.transformer, self.components.controlnet) for p in m.parameters()
                if p.requires_grad]

    @torch.no_grad()
    def _prepare(self, example: StyleExample) -> dict:
        """Encode once per reference: packed latents, ids, prompt embeddings, control image."""
        pipe, vae = self.pipe, self.components.vae
        width, height = training_size(example.image, self.settings.resolution)
        device, dtype = pipe._execution_device, self.components.transformer.dtype
        pixels = pipe.image_processor.preprocess(example.image.convert("RGB"), height=height, width=width)
        latents = vae.encode(pixels.to(device, vae.dtype)).latent_dist.mode()
        latents = (latents - vae.config.shift_factor) * vae.config.scaling_factor
        b, c, h, w = latents.shape
        prompt_embeds, pooled, text_ids = pipe.encode_prompt(example.prompt, None, device=device)
        control = pipe.prepare_image(example.hed.convert("RGB"), width, height, 1, 1, device, dtype)
        return dict(x=FluxControlNetPipeline._pack_latents(latents, b, c, h, w).to(dtype),
                    img_ids=FluxControlNetPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype),
                    prompt_embeds=prompt_embeds.to(dtype), pooled=pooled.to(dtype), text_ids=text_ids, control=control)

    def flow_loss(self, batch: dict, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Rectified-flow loss at time t: the model predicts the velocity noise - x from z_t."""
        x = batch["x"]
        z = (1 - t) * x + t * noise
        guidance = torch.full((1,), self.settings.guidance_scale, device=x.device)
        common = dict(timestep=t.reshape(1), guidance=guidance, pooled_projections=batch["pooled"],
                      encoder_hidden_states=batch["prompt_embeds"], txt_ids=batch["text_ids"],
                      img_ids=batch["img_ids"], return_dict=False)
        block_samples, single_samples = self.components.controlnet(
            hidden_states=z, controlnet_cond=batch["control"], conditioning_scale=1.0, **common)
        prediction = self.components.transformer(
            hidden_states=z, controlnet_block_samples=block_samples, controlnet_single_block_samples=single_samples,
            controlnet_blocks_repeat=True, **common)[0]
        return torch.nn.functional.mse_loss(prediction.float(), (noise - x).float())

    def _eval_loss(self, batches: list[dict], draws: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> float:
        with torch.no_grad():
            losses = [self.flow_loss(b, n, t).item() for b, pairs in zip(batches, draws) for n, t in pairs]
        return float(np.mean(losses))

    def train(self, examples: Sequence[StyleExample], progress: Callable[[int, float], None] | None = None
              ) -> TrainingResult:
        s = self.settings
        generator = torch.Generator().manual_seed(s.seed)
        batches = [self._prepare(e) for e in examples]
        # Logit-normal times, as in diffusers' FLUX training scripts; fixed draws for the evaluation loss.
        def draw(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(batch["x"].shape, generator=generator).to(batch["x"])
            return noise, torch.sigmoid(torch.randn((), generator=generator)).to(batch["x"])

        eval_draws = [[draw(b) for _ in range(s.eval_samples)] for b in batches]
        before = self._eval_loss(batches, eval_draws)
        optimizer = torch.optim.AdamW(self.parameters(), lr=s.learning_rate)
        for model in (self.components.transformer, self.components.controlnet):
            model.train()
        losses = []
        for step in range(s.steps):
            batch = batches[step % len(batches)]  # one identifier per step, round robin over the styles
            loss = self.flow_loss(batch, *draw(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if progress:
                progress(step, losses[-1])
        for model in (self.components.transformer, self.components.controlnet):
            model.eval()
        return TrainingResult(losses, before, self._eval_loss(batches, eval_draws), [e.prompt for e in examples])

    def save(self, out_dir: Path, result: TrainingResult) -> None:
        """Write the LoRA atomically: diffusers transformer LoRA file, ControlNet LoRA, settings and losses."""
        with atomic_dir(out_dir) as tmp:
            FluxControlNetPipeline.save_lora_weights(
                tmp, transformer_lora_layers=get_peft_model_state_dict(self.components.transformer),
                safe_serialization=True)
            save_file(get_peft_model_state_dict(self.components.controlnet), tmp / CONTROLNET_LORA_FILE)
            (tmp / META_FILE).write_text(json.dumps({
                "settings": asdict(self.settings), "prompts": result.prompts, "losses": result.losses,
                "eval_loss_before": result.eval_loss_before, "eval_loss_after": result.eval_loss_after,
            }, indent=1))


def load_style_lora(pipe: FluxControlNetPipeline, lora_dir: Path) -> dict:
    """Load a saved style LoRA into a pipeline's transformer and ControlNet; returns its metadata."""
    meta = json.loads((lora_dir / META_FILE).read_text())
    settings = LoRASettings(**meta["settings"])
    pipe.load_lora_weights(lora_dir, weight_name="pytorch_lora_weights.safetensors")
    pipe.controlnet.add_adapter(lora_config(settings, controlnet_targets()))
    set_peft_model_state_dict(pipe.controlnet, load_file(lora_dir / CONTROLNET_LORA_FILE))
    return meta
