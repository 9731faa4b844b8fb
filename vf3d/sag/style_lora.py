"""Distribution alignment (paper Sec. 3.2): a style LoRA on FLUX and its HED ControlNet.

LoRA (rank 16) on the attention of the transformer's first 23 blocks (19 double-stream + 4 single-stream) and
of the ControlNet's blocks, qkv fused as x-flux's processors while training, trained on the reference image(s)
and their HED maps under unique identifier prompts with the rectified-flow loss (target = noise - x,
z_t = (1 - t) x + t noise). One LoRA may hold several styles, one identifier each (paper 'Style Variation').
Saved with the diffusers LoRA conventions: `pytorch_lora_weights.safetensors` (transformer,
`FluxControlNetPipeline.load_lora_weights`) plus `controlnet_lora.safetensors` and `style_lora.json`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diffusers import FluxControlNetPipeline
from diffusers.optimization import get_scheduler
from diffusers.pipelines.flux.pipeline_flux_controlnet import calculate_shift
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import load_file, save_file

from vf3d.common.atomic import atomic_dir
from vf3d.models.flux import FluxComponents
from vf3d.models.hed import as_rgb
from vf3d.models.weights import read_safetensors

ATTENTION = r"attn\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)"
"""x-flux's attention LoRA in diffusers names: qkv_lora1/2 -> to_q|k|v / add_q|k|v_proj, proj_lora1/2 -> to_out.0 /
to_add_out (double blocks); qkv_lora -> to_q|k|v (single blocks)."""
SINGLE_OUTPUT = r"proj_out"
"""x-flux's single-block proj_lora, on linear2 (attention + MLP -> dim), diffusers' `proj_out`."""
FEED_FORWARD = r"ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2)|proj_mlp"
FUSED_ATTENTION = r"attn\.(to_qkv|to_out\.0|to_added_qkv|to_add_out)"
"""The same LoRA while training with fused projections: one qkv LoRA (one A, one B of 3 x dim) per stream, as
x-flux's `qkv_lora1/2` and single-block `qkv_lora`."""
FUSED_PARTS = {"to_qkv": ("to_q", "to_k", "to_v"), "to_added_qkv": ("add_q_proj", "add_k_proj", "add_v_proj")}
CONTROLNET_LORA_FILE, META_FILE = "controlnet_lora.safetensors", "style_lora.json"
XFLUX_LORA_FILE, XFLUX_CONTROLNET_LORA_FILE = "xflux_lora.safetensors", "xflux_controlnet_lora.safetensors"
OFFICIAL_LORA_FILES = ("lora.safetensors", "controlnet.lora.safetensors")
"""The official distribution alignment's `loras/<name>/checkpoint-<step>/` files: the transformer's and the
ControlNet's x-flux LoRAs; the official anchors apply both (`sag_generate_anchor_view.py`)."""


@dataclass(frozen=True)
class LoRASettings:
    """Style LoRA training settings (paper Sec. 4 and the official code)."""

    rank: int = 16
    """LoRA rank (paper: 16); alpha = rank, so the LoRA scale is 1."""
    double_blocks: tuple[int, ...] = tuple(range(19))
    """Double-stream blocks with LoRA (official: all 19, x-flux `double_blocks_idx` 0-18)."""
    single_blocks: tuple[int, ...] = (1, 2, 3, 4)
    """Single-stream blocks with LoRA (official: x-flux `single_blocks_idx` 1-4; 23 blocks in all)."""
    feed_forward: bool = False
    """Also wrap the feed-forward layers (official: attention qkv and output projections only)."""
    fused_qkv: bool = True
    """Train one LoRA per fused qkv projection (official: x-flux's `qkv_lora`, a shared down-projection for q, k
    and v); after training it is stored exactly as three LoRAs sharing that A. False: three independent LoRAs."""
    steps: int = 400
    """Optimisation steps (paper: 400; the official config allows 600)."""
    learning_rate: float = 1e-4
    """AdamW learning rate (official `configs/distribution_alignment.yaml` l. 12-18: 1e-4, betas (0.9, 0.999),
    weight decay 0.01, eps 1e-8)."""
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    lr_scheduler: str = "constant"
    """diffusers' `get_scheduler` name, called with `warmup_steps` as the official script does
    (`sag_distribution_alignment.py` l. 246-251). Official: "constant" (`distribution_alignment.yaml` l. 13), for
    which diffusers ignores the warm-up: the lr is 1e-4 from the first step. "constant_with_warmup": the 10-step
    linear warm-up the yaml's `lr_warmup_steps` suggests."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up steps passed to the scheduler (official lr_warmup_steps: 10, l. 14; without
    effect under "constant")."""
    max_grad_norm: float = 1.0
    """Gradient clipping (official max_grad_norm: 1.0, l. 19)."""
    clip_grad: Literal["transformer", "both"] = "transformer"
    """Whose gradients are clipped to `max_grad_norm`. Official (`sag_distribution_alignment.py` l. 363-364:
    `accelerator.clip_grad_norm_(dit.parameters(), ...)`): the transformer's LoRA only, with its own norm; the
    ControlNet's LoRA is stepped unclipped. "both": one norm over both LoRAs, clipped together."""
    resolution: int = 1024
    """Longer side of the training image (official img_size: 1024), floored to a multiple of 32."""
    random_aspect: bool = True
    """Each step crops the reference to a random one of 16:9, 4:3, 1:1 or its own aspect (official random_ratio);
    the edge map is cropped alike."""
    single_style_identifier: bool = False
    """False (official `sag_distribution_alignment.py`: the prompt defaults to ''): a LoRA of one style learns an
    empty prompt, and anchors are sampled with the post-prompt alone. True: the catalog's identifier prompt, as the
    paper's text describes. A multi-style LoRA always learns one identifier per style."""
    timesteps: Literal["xflux", "logit_normal"] = "xflux"
    """"xflux": uniform over x-flux's 1,000-point schedule shifted for 4,096 tokens (mu = 1.15), as the official
    training; "logit_normal": sigmoid(N(0, 1)), diffusers' FLUX training scripts."""
    guidance_scale: float = 1.0
    """Distilled guidance value fed to FLUX-dev while training."""
    seed: int = 0
    eval_samples: int = 4
    """Fixed (noise, t) pairs per reference for the before/after evaluation loss."""


LORA_PRESETS = {"paper": LoRASettings(),
                "tiny": LoRASettings(steps=30, learning_rate=1e-3, resolution=64)}
ASPECTS = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0, "own": None}
"""The official crops (`image_datasets/dataset.py`: 16:9, 4:3, 1:1 or "default", centred)."""


def xflux_training_times(steps: int = 999) -> np.ndarray:
    """x-flux's `get_schedule(999, (1024 // 8) * (1024 // 8) // 4, shift=True)`: 1,000 times from 1 to 0 shifted
    with mu = 1.15 (4,096 tokens); training draws one uniformly."""
    mu = calculate_shift(4096)
    t = np.linspace(1, 0, steps + 1)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, np.exp(mu) / (np.exp(mu) + (1 / np.maximum(t, 1e-12) - 1)), 0.0)


def centre_crop(image: Image.Image, aspect: float | None) -> Image.Image:
    """The largest centred crop of `image` with width / height = `aspect` (None: the image itself)."""
    if aspect is None:
        return image
    width, height = image.size
    if width / height > aspect:
        new_width = int(height * aspect)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = int(width / aspect)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def lora_blocks(settings: LoRASettings) -> str:
    """The blocks that carry the LoRA, as a regex of module-name prefixes."""
    double = "|".join(str(i) for i in settings.double_blocks)
    single = "|".join(str(i) for i in settings.single_blocks)
    return rf"(transformer_blocks\.({double})|single_transformer_blocks\.({single}))"


def transformer_targets(settings: LoRASettings, fused: bool = False) -> str:
    """The LoRA modules of the transformer and of the ControlNet as a regex: x-flux's attention processors on the
    chosen blocks (the official code gives both models the same block indices); `fused`: with qkv fused."""
    attention = FUSED_ATTENTION if fused else ATTENTION
    modules = "|".join([attention, SINGLE_OUTPUT] + ([FEED_FORWARD] if settings.feed_forward else []))
    return rf"^{lora_blocks(settings)}\.({modules})$"


def lora_attention_modules(model: torch.nn.Module, settings: LoRASettings) -> list[torch.nn.Module]:
    """The attention modules of the LoRA's blocks (their q/k/v are fused while training)."""
    pattern = re.compile(rf"{lora_blocks(settings)}\.attn")
    return [module for name, module in model.named_modules() if pattern.fullmatch(name)]


def split_fused_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A PEFT state dict with fused qkv LoRAs -> the identical LoRA on to_q/k/v (add_q/k/v_proj): each part keeps
    the shared A and takes its third of B, so every output is unchanged."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(.*)\.(to_qkv|to_added_qkv)\.lora_(A|B)\.weight", key)
        if not m:
            out[key] = value
            continue
        parts = value.chunk(3, dim=0) if m.group(3) == "B" else (value,) * 3
        for name, part in zip(FUSED_PARTS[m.group(2)], parts):
            out[f"{m.group(1)}.{name}.lora_{m.group(3)}.weight"] = part.clone()
    return out


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


def training_size(image: Image.Image, resolution: int, multiple: int = 32) -> tuple[int, int]:
    """Longer side `resolution`, both sides floored to a multiple of 32 (official `image_resize` then `// 32`)."""
    scale = resolution / max(image.size)
    return (max(multiple, int(image.width * scale) // multiple * multiple),
            max(multiple, int(image.height * scale) // multiple * multiple))


class StyleLoRATrainer:
    """Adds the LoRA adapters to FLUX components and trains them on style examples."""

    def __init__(self, components: FluxComponents, settings: LoRASettings,
                 edge_detector: Callable[[np.ndarray], np.ndarray] | None = None):
        """`edge_detector`: recomputes the control map of every random crop (official: HED on the crop); None
        crops the example's own edge map instead."""
        self.components, self.settings, self.edge_detector = components, settings, edge_detector
        self.pipe: FluxControlNetPipeline = components.pipeline()
        self.pipe.set_progress_bar_config(disable=True)
        for model in (components.transformer, components.controlnet, components.vae, components.text_encoder,
                      components.text_encoder_2):
            model.requires_grad_(False)
        for model in (components.transformer, components.controlnet):
            if settings.fused_qkv:
                for attention in lora_attention_modules(model, settings):
                    attention.fuse_projections()
            model.add_adapter(lora_config(settings, transformer_targets(settings, fused=settings.fused_qkv)))

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in (self.components.transformer, self.components.controlnet) for p in m.parameters()
                if p.requires_grad]

    def _crops(self, example: StyleExample) -> list[dict]:
        """One prepared batch per official crop of the reference (or just the reference, without random_aspect)."""
        aspects = list(ASPECTS.values()) if self.settings.random_aspect else [None]
        crops = []
        for aspect in aspects:
            image = centre_crop(example.image, aspect)
            hed = (Image.fromarray(as_rgb(self.edge_detector(np.asarray(image.convert("RGB")))))
                   if self.edge_detector is not None and aspect is not None else centre_crop(example.hed, aspect))
            crops.append(self._prepare(StyleExample(image, hed, example.prompt)))
        return crops

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
        crops = [self._crops(e) for e in examples]
        batches = [c[-1] for c in crops]  # the uncropped references, for the evaluation loss
        times = torch.from_numpy(xflux_training_times()).float()

        def draw(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(batch["x"].shape, generator=generator).to(batch["x"])
            if s.timesteps == "xflux":
                return noise, times[torch.randint(0, len(times), (), generator=generator)].to(batch["x"])
            return noise, torch.sigmoid(torch.randn((), generator=generator)).to(batch["x"])

        eval_draws = [[draw(b) for _ in range(s.eval_samples)] for b in batches]
        before = self._eval_loss(batches, eval_draws)
        optimizer = torch.optim.AdamW(self.parameters(), lr=s.learning_rate, betas=s.betas,
                                      weight_decay=s.weight_decay, eps=1e-8)
        schedule = get_scheduler(s.lr_scheduler, optimizer, num_warmup_steps=s.warmup_steps, num_training_steps=s.steps)
        clipped = self.parameters() if s.clip_grad == "both" else [
            p for p in self.components.transformer.parameters() if p.requires_grad]
        for model in (self.components.transformer, self.components.controlnet):
            model.train()
        losses = []
        for step in range(s.steps):
            options = crops[step % len(crops)]  # one identifier per step, round robin over the styles
            batch = options[int(torch.randint(0, len(options), (), generator=generator))]  # a random crop
            loss = self.flow_loss(batch, *draw(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(clipped, s.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if progress:
                progress(step, losses[-1])
        for model in (self.components.transformer, self.components.controlnet):
            model.eval()
            if s.fused_qkv:
                self._unfuse(model)
        return TrainingResult(losses, before, self._eval_loss(batches, eval_draws), [e.prompt for e in examples])

    def _unfuse(self, model: torch.nn.Module) -> None:
        """Back to separate q/k/v projections, the trained fused LoRA carried over exactly (`split_fused_qkv`)."""
        state = split_fused_qkv(get_peft_model_state_dict(model))
        model.delete_adapters("default")
        for attention in lora_attention_modules(model, self.settings):
            attention.unfuse_projections()
        model.add_adapter(lora_config(self.settings, transformer_targets(self.settings)))
        set_peft_model_state_dict(model, state)

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


def training_prompts(identifiers: Sequence[str], settings: LoRASettings) -> list[str]:
    """The prompt each style's example is trained with (`LoRASettings.single_style_identifier`)."""
    return [""] if len(identifiers) == 1 and not settings.single_style_identifier else list(identifiers)


def sampling_prompt(lora_prompts: Sequence[str], identifier: str, post_prompt: str | None) -> str:
    """The anchor prompt under a trained LoRA: the identifier (+ post-prompt) it learned, or the post-prompt alone
    when it learned the empty prompt."""
    if list(lora_prompts) == [""]:
        return post_prompt or ""
    return f"{identifier}, {post_prompt}" if post_prompt else identifier


def check_xflux_lora(path: Path, transformer_config: dict) -> dict:
    """Verify an x-flux LoRA file against a FLUX transformer's config, key by key: block indices exist, each
    down/up pair has one rank and the shapes of the projection it adapts. Returns what was verified; any
    mismatch is one `ValueError` naming the file and the first offending keys."""
    dim = transformer_config["num_attention_heads"] * transformer_config["attention_head_dim"]
    blocks = {"double_blocks": transformer_config["num_layers"], "single_blocks": transformer_config["num_single_layers"]}
    fan = {"qkv_lora1": (dim, 3 * dim), "qkv_lora2": (dim, 3 * dim), "proj_lora1": (dim, dim),
           "proj_lora2": (dim, dim), "qkv_lora": (dim, 3 * dim), "proj_lora": (dim + 4 * dim, dim)}
    tensors = read_safetensors(path)
    wrong, ranks, adapted = [], set(), set()
    for key, value in tensors.items():
        m = re.match(r"^(?:diffusion_model\.)?(double_blocks|single_blocks)\.(\d+)\.processor\.(\w+)\.(down|up)\.weight$", key)
        if not m or m.group(3) not in fan or int(m.group(2)) >= blocks[m.group(1)] or (
                m.group(1) == "single_blocks") != (m.group(3) in ("qkv_lora", "proj_lora")):
            wrong.append(f"{key} (not an x-flux LoRA key of this transformer)")
            continue
        fan_in, fan_out = fan[m.group(3)]
        rank = value.shape[0] if m.group(4) == "down" else value.shape[1]
        expected = (rank, fan_in) if m.group(4) == "down" else (fan_out, rank)
        if tuple(value.shape) != expected:
            wrong.append(f"{key} {tuple(value.shape)} != {expected}")
        ranks.add(int(rank))
        adapted.add(f"{m.group(1)}.{m.group(2)}")
    if wrong or not tensors:
        raise ValueError(f"{path}: not an x-flux LoRA for this model: {len(wrong)} bad key(s) "
                         f"(first: {'; '.join(wrong[:3]) or 'the file is empty'})")
    return {"format": "x-flux", "tensors_verified": len(tensors), "ranks": sorted(ranks),
            "blocks": sorted(adapted, key=lambda b: (b.split(".")[0], int(b.split(".")[1])))}


def official_lora_files(source: Path) -> tuple[Path, Path | None]:
    """The transformer and ControlNet x-flux LoRA files of an official checkpoint folder, or of a transformer file
    (its ControlNet LoRA is the sibling `controlnet.lora.safetensors`, when there). None: no ControlNet LoRA."""
    source = Path(source)
    transformer = source / OFFICIAL_LORA_FILES[0] if source.is_dir() else source
    controlnet = transformer.parent / OFFICIAL_LORA_FILES[1]
    return transformer, controlnet if controlnet.is_file() and controlnet != transformer else None


def import_xflux_lora(source: Path, out_dir: Path, transformer_config: dict, controlnet_config: dict,
                      prompt: str = "") -> dict:
    """Verify the official distribution alignment's x-flux LoRAs (`official_lora_files`; `check_xflux_lora`
    against each model's config) and write them as a style LoRA folder `load_style_lora` reads, atomically.
    `prompt`: what they were trained with (the official default: empty). Returns what was verified."""
    transformer_file, controlnet_file = official_lora_files(source)
    report = check_xflux_lora(transformer_file, transformer_config)
    controlnet = None if controlnet_file is None else check_xflux_lora(controlnet_file, controlnet_config)
    with atomic_dir(out_dir) as tmp:
        shutil.copyfile(transformer_file, tmp / XFLUX_LORA_FILE)
        if controlnet_file is not None:
            shutil.copyfile(controlnet_file, tmp / XFLUX_CONTROLNET_LORA_FILE)
        report = {**report, "controlnet": controlnet or "none (the official anchors apply one: "
                                                        f"{OFFICIAL_LORA_FILES[1]} was not beside {transformer_file})"}
        (tmp / META_FILE).write_text(json.dumps({"source": str(source), "prompts": [prompt], **report}, indent=1))
    return report


def load_style_lora(pipe: FluxControlNetPipeline, lora_dir: Path) -> dict:
    """Load a saved style LoRA into a pipeline's transformer and ControlNet; returns its metadata.

    A folder holding `XFLUX_LORA_FILE` (imported from the official distribution alignment) loads into the
    transformer through diffusers' XLabs converter, which splits x-flux's fused qkv LoRA exactly into
    to_q/k/v LoRAs; its ControlNet LoRA (`XFLUX_CONTROLNET_LORA_FILE`, same format) goes through the same
    converter into the ControlNet.
    """
    meta = json.loads((lora_dir / META_FILE).read_text())
    if (lora_dir / XFLUX_LORA_FILE).is_file():
        pipe.load_lora_weights(load_file(lora_dir / XFLUX_LORA_FILE))
        if (lora_dir / XFLUX_CONTROLNET_LORA_FILE).is_file():
            converted = pipe.lora_state_dict(load_file(lora_dir / XFLUX_CONTROLNET_LORA_FILE))
            state = {k.removeprefix("transformer."): v for k, v in converted.items()}
            rank = next(v.shape[0] for k, v in state.items() if k.endswith("lora_A.weight"))
            modules = sorted({k.rsplit(".lora_", 1)[0] for k in state})
            pipe.controlnet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=modules))
            set_peft_model_state_dict(pipe.controlnet, state)
        return meta
    settings = LoRASettings(**meta["settings"])
    pipe.load_lora_weights(lora_dir, weight_name="pytorch_lora_weights.safetensors")
    pipe.controlnet.add_adapter(lora_config(settings, transformer_targets(settings)))
    set_peft_model_state_dict(pipe.controlnet, load_file(lora_dir / CONTROLNET_LORA_FILE))
    return meta
