"""Pretrain a small CogVideoX on the synthetic world, from scratch, on a CPU: the base generator to align.

    clevereward generator pretrain --config configs/generator/world.yaml --output_dir runs/world-generator

The model is CogVideoX's real architecture at a small size — diffusers' `AutoencoderKLCogVideoX`,
`CogVideoXTransformer3DModel`, a small T5 encoder and CogVideoX's v-prediction DDIM scheduler —
trained on renderings of the world's *train-split* captions only, in two stages:
1. the VAE, on frames: MSE with the object's pixels weighted up (the object is a few percent of
   the frame, and its shape is what the transformer must learn to draw) plus a small KL term;
   optionally with a margin around the object weighted as the object (a faint halo or a ghost of
   the neighbouring frame changes the outline the check reads), a little L1, its posterior's mean
   decoded (as it is used: the transformer's latents are the mean), and every clip also redrawn in
   an off-palette color (`configs/generator/world-sharp-vae.yaml`);
2. the transformer and the text encoder together, on the frozen VAE's latents, with CogVideoX's
   v-prediction loss and a share of empty prompts (so classifier-free guidance has an
   unconditional model).
The result is a normal `CogVideoXPipeline` folder (`OUT/pipeline`): `load_pipeline(OUT/pipeline)`,
`--generator OUT/pipeline` and `pipe.load_lora_weights` accept it.

Design decisions:
- Deterministic for a seed: the training clips are rendered from (seed, caption, index); every
  batch, its noise and its timesteps are functions of (seed, stage, step).
- Resumable: each stage checkpoints its weights, optimizer and step (`OUT/<stage>-checkpoint`,
  written atomically); a rerun continues from there and a finished stage is skipped.
- The VAE's `scaling_factor` is set to 1 / std of the training latents, so the transformer sees
  unit-variance latents, as CogVideoX's do.
"""

from __future__ import annotations

import functools
import io
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from align.pretrain_config import PretrainConfig
from reward.files import append_jsonl, atomic_dir, atomic_write, read_jsonl, write_json

__all__ = ["render_training_clips", "pretrain", "write_provenance", "main"]

STAGES = ("vae", "transformer")
PIPELINE_DIR = "pipeline"
LOSS_LOG = "loss.jsonl"
LOSS_PLOT = "loss.png"
# Beside the pipeline's components: the command line and settings that made it, and the library versions.
PROVENANCE_FILE = "provenance.json"
_STAGE_SEED = {"vae": 1, "transformer": 2}  # keeps the two stages' random streams apart
# Off-palette object colors keep this far (Euclidean, in pixel levels) from every palette color and
# the background: what is left of the RGB cube (a fifth of it) is cyans, magentas, pinks and near-whites,
# none of which a person would call red, green, blue or yellow.
OFF_PALETTE_DISTANCE = 120.0


def off_palette_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A random object color (pixel levels) at least `OFF_PALETTE_DISTANCE` from every palette color and
    from the background: no caption names it, so no color–shape pair of any split is drawn with it."""
    from reward.synthetic import BACKGROUND, COLORS

    taken = np.array([*COLORS.values(), BACKGROUND], dtype=np.float64)  # [5, 3]
    while True:
        rgb = rng.uniform(0, 255, size=3)
        if np.linalg.norm(taken - rgb, axis=1).min() >= OFF_PALETTE_DISTANCE:
            return tuple(float(v) for v in rgb)


def render_training_clips(
    config: PretrainConfig, off_palette: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The train-split clips at the generator's size: float [N, F, C, H, W] in [0, 1], object masks
    [N, F, 1, H, W] and captions [N].

    With `off_palette`, the same scenes with the object in a random `off_palette_color` instead (for
    the VAE, which must draw any shape in any color; the captions then name the scene only).
    """
    from reward.synthetic import CAPTIONS, caption_split, draw_scene, foreground_mask, render_scene
    from reward.video import resample_videos

    captions = [c for c in CAPTIONS if caption_split(c) == "train"]
    clips, masks, names = [], [], []
    for i, caption in enumerate(captions):
        for k in range(config.clips_per_caption):
            scene = draw_scene(caption, np.random.default_rng([config.seed, i, k]))
            rgb = off_palette_color(np.random.default_rng([config.seed, i, k, 1])) if off_palette else None
            frames = render_scene(scene, rgb=rgb)  # uint8 [16, C, 64, 64]
            clips.append(frames.float() / 255)
            masks.append(torch.from_numpy(foreground_mask(frames)).float()[:, None])  # [16, 1, 64, 64]
            names.append(caption)
    size = (config.height, config.width)
    videos = resample_videos(torch.stack(clips), config.num_frames, size)  # [N, F, C, H, W]
    masks = resample_videos(torch.stack(masks), config.num_frames, size).clamp(0, 1)  # [N, F, 1, H, W]
    return videos, masks, names


def _drop_word(caption: str, attribute: str) -> str:
    """The caption without the word naming `attribute` ("a red square moving up", "color" -> "a square moving up")."""
    from reward.synthetic import ATTRIBUTE_VALUES, parse_caption

    position = tuple(ATTRIBUTE_VALUES).index(attribute)  # parse_caption's order: color, shape, direction
    word = parse_caption(caption)[position]
    return " ".join(w for w in caption.split() if w != word)


def _models(config: PretrainConfig):
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from align.cogvideox.loading import COGVIDEOX_SCHEDULER, TINY_TEXT_LENGTH, _tiny_tokenizer

    tokenizer = _tiny_tokenizer()
    blocks = len(config.vae_channels)
    torch.manual_seed(config.seed)
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * blocks, up_block_types=("CogVideoXUpBlock3D",) * blocks,
        block_out_channels=tuple(config.vae_channels), latent_channels=config.latent_channels, layers_per_block=1,
        norm_num_groups=min(4, config.vae_channels[0]), temporal_compression_ratio=config.time_compression,
        sample_height=config.height, sample_width=config.width,
    )  # fmt: skip
    spatial = 2 ** (blocks - 1)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=config.heads, attention_head_dim=config.head_dim, in_channels=config.latent_channels,
        out_channels=config.latent_channels, time_embed_dim=config.heads * config.head_dim, text_embed_dim=config.text_dim,
        num_layers=config.layers, sample_height=config.height // spatial, sample_width=config.width // spatial,
        sample_frames=config.num_frames, patch_size=config.patch_size, temporal_compression_ratio=config.time_compression,
        max_text_seq_length=TINY_TEXT_LENGTH,
    )  # fmt: skip
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=config.text_dim,
            d_kv=config.text_dim // 4,
            num_heads=4,
            d_ff=2 * config.text_dim,
            num_layers=config.text_layers,
            relative_attention_num_buckets=8,
            dropout_rate=0.0,  # no dropout: a resumed run draws nothing from the global RNG
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )  # fmt: skip
    )
    scheduler = CogVideoXDDIMScheduler(**{**COGVIDEOX_SCHEDULER, "snr_shift_scale": config.snr_shift_scale})
    return tokenizer, vae, transformer, text_encoder, scheduler


def _generator(config: PretrainConfig, stage: str, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((config.seed * 1000 + _STAGE_SEED[stage]) * 1_000_003 + step)


def _lr_factor(schedule: str, step: int, steps: int, decay_start: int = 0) -> float:
    """The learning rate's multiplier at `step` of `steps`: 1, or 1 until `decay_start` and then a cosine
    down to 0 at `steps`: 0.5 * (1 + cos(pi * (step - decay_start) / (steps - decay_start)))."""
    if schedule == "constant" or step < decay_start:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - decay_start) / (steps - decay_start)))


def _run_stage(
    config, stage, modules, params, lr, steps, loss_of_step, out: Path, *,
    schedule="constant", decay_start=0, ema_decay=0.0
) -> None:  # fmt: skip
    """Train `modules` for `steps` steps (resuming from the stage's checkpoint); `loss_of_step(step)` -> loss.

    The learning rate is a function of the step (`schedule`), so a resumed run continues it exactly.
    With `ema_decay`, an exponential moving average of the weights is kept beside them (and in the
    checkpoint) and copied into the modules at the end: it is what the pipeline is saved with.
    """
    from safetensors.torch import (  # (tied weights: T5's embedding)
        load_file,
        load_model,
        save_file,
        save_model,
    )

    checkpoint = out / f"{stage}-checkpoint"
    optimizer = torch.optim.AdamW(params, lr=lr)
    named = {
        f"{name}.{key}": value
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    ema = {k: v.detach().clone() for k, v in named.items() if v.is_floating_point()} if ema_decay else {}
    start = 0
    if (checkpoint / "state.pt").is_file():
        for name, module in modules.items():
            load_model(module, str(checkpoint / f"{name}.safetensors"))
        if ema:
            ema = load_file(str(checkpoint / "ema.safetensors"))
        state = torch.load(checkpoint / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    for module in modules.values():
        module.train()
    progress = tqdm(range(start, steps), desc=f"pretrain {stage}", initial=start, total=steps)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = lr * _lr_factor(schedule, step, steps, decay_start)
        loss = loss_of_step(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            for key, average in ema.items():  # state_dict tensors share storage with the parameters
                average.lerp_(named[key].float(), 1 - ema_decay)
        done, value = step + 1, loss.item()
        if done % config.log_steps == 0 or done == steps:
            append_jsonl(out / LOSS_LOG, [{"stage": stage, "step": done, "loss": value}])
            progress.set_postfix(loss=f"{value:.4f}")
        if done % config.checkpoint_steps == 0 or done == steps:
            with atomic_dir(checkpoint) as tmp:
                for name, module in modules.items():
                    save_model(module, str(tmp / f"{name}.safetensors"))
                if ema:
                    save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
                torch.save({"optimizer": optimizer.state_dict(), "step": done}, tmp / "state.pt")
    if ema:
        with torch.no_grad():
            for key, average in ema.items():
                named[key].copy_(average)
    for module in modules.values():
        module.eval()


def _pixel_weights(masks: torch.Tensor, object_weight: float, margin: int) -> torch.Tensor:
    """Per-pixel VAE loss weights [N, 1, F, H, W]: `object_weight` on the object and `margin` pixels
    (and frames) around it, 1 elsewhere; `masks` are the clips' object masks [N, F, 1, H, W]."""
    cells = masks.permute(0, 2, 1, 3, 4)  # [N, F, 1, H, W] -> [N, 1, F, H, W]
    if margin:
        window = (2 * min(margin, 1) + 1, 2 * margin + 1, 2 * margin + 1)  # one frame either side at most
        cells = F.max_pool3d(cells, kernel_size=window, stride=1, padding=tuple(k // 2 for k in window))
    return 1 + (object_weight - 1) * cells


def _latent_weights(masks: torch.Tensor, latent_shape: torch.Size, object_weight: float) -> torch.Tensor:
    """Per-latent loss weights [N, F_lat, 1, h, w]: `object_weight` where the object is, 1 elsewhere.

    `masks` are the clips' object masks [N, F, 1, H, W]; a latent is the object's when any pixel
    of its space-time cell is (max pooling to the latent grid), dilated by one latent pixel so the
    object's edge, where its shape is, counts in full.
    """
    n, frames, _, h, w = latent_shape
    cells = F.adaptive_max_pool3d(masks.permute(0, 2, 1, 3, 4), (frames, h, w))  # [N, 1, F_lat, h, w]
    cells = F.max_pool3d(cells, kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))
    return (1 + (object_weight - 1) * cells).permute(0, 2, 1, 3, 4)  # -> [N, F_lat, 1, h, w]


def _plot_losses(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    records = read_jsonl(out / LOSS_LOG)
    fig, axes = plt.subplots(1, len(STAGES), figsize=(8, 3))
    for ax, stage in zip(axes, STAGES):
        points = [(r["step"], r["loss"]) for r in records if r["stage"] == stage]
        if points:
            ax.plot(*zip(*points))
        ax.set_yscale("log")
        ax.set_title(f"{stage} loss")
        ax.set_xlabel("step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_write(out / LOSS_PLOT, mode="wb") as f:
        f.write(buffer.getvalue())


def write_provenance(pipeline_dir: Path, config: PretrainConfig, argv: list[str] | None) -> None:
    """Record in `pipeline_dir/provenance.json` how it was made: the command's arguments, every setting,
    and the versions of the libraries whose arithmetic the weights depend on."""
    import diffusers
    import transformers

    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                "transformers": transformers.__version__}  # fmt: skip
    write_json(pipeline_dir / PROVENANCE_FILE, {"argv": argv, "config": asdict(config), "versions": versions})


def pretrain(config: PretrainConfig, argv: list[str] | None = None) -> Path:
    """Run (or resume) both stages and write `output_dir/pipeline`; returns that folder.

    `argv`, the command line it came from (if any), is recorded in the pipeline's provenance.json."""
    from diffusers import CogVideoXPipeline

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "pretrain_config.json", asdict(config))
    if config.torch_num_threads:
        torch.set_num_threads(config.torch_num_threads)
    videos, masks, captions = render_training_clips(config)
    tokenizer, vae, transformer, text_encoder, scheduler = _models(config)

    # Stage 1: the VAE on pixels in [-1, 1] (diffusers' convention), [B, C, F, H, W] layout.
    @functools.cache
    def vae_data() -> tuple[torch.Tensor, torch.Tensor]:
        """(pixels [N', C, F, H, W], loss weights [N', 1, F, H, W]), built at the stage's first step:
        a resumed run whose VAE is done does not render the off-palette clips."""
        vae_videos, vae_masks = videos, masks
        if config.vae_off_palette:
            recolored, recolored_masks, _ = render_training_clips(config, off_palette=True)
            vae_videos, vae_masks = torch.cat([videos, recolored]), torch.cat([masks, recolored_masks])
        vae_pixels = vae_videos.permute(0, 2, 1, 3, 4) * 2 - 1  # [N', F, C, H, W] -> [N', C, F, H, W]
        return vae_pixels, _pixel_weights(vae_masks, config.object_weight, config.object_margin)

    def vae_loss(step: int) -> torch.Tensor:
        vae_pixels, weights = vae_data()
        index = torch.randint(
            0, len(vae_pixels), (config.vae_batch_size,), generator=_generator(config, "vae", step)
        )
        posterior = vae.encode(vae_pixels[index]).latent_dist
        noise = _generator(config, "vae", -step - 1)  # the posterior sample's own stream
        z = posterior.mode() if config.vae_decode_mean else posterior.sample(noise)
        error = vae.decode(z).sample - vae_pixels[index]
        reconstruction = (weights[index] * (error**2 + config.vae_l1_weight * error.abs())).mean()
        return reconstruction + config.kl_weight * posterior.kl().mean() / math.prod(posterior.mean.shape[1:])

    _run_stage(config, "vae", {"vae": vae}, list(vae.parameters()), config.vae_learning_rate, config.vae_steps,
               vae_loss, out)  # fmt: skip
    vae.requires_grad_(False)

    # Stage 2: latents once, scaled to unit variance; the transformer and T5 on them.
    pixels = videos.permute(0, 2, 1, 3, 4) * 2 - 1  # [N, F, C, H, W] -> [N, C, F, H, W]
    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(pixels[i : i + 16]).latent_dist.mode() for i in range(0, len(pixels), 16)]
        )
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    latents = (latents * vae.config.scaling_factor).permute(
        0, 2, 1, 3, 4
    )  # [N, C, F, h, w] -> [N, F, C, h, w]
    # The object covers a few percent of the latents; weighting them up is what makes the
    # transformer learn its shape rather than only the background (a blob passes the loss).
    latent_weights = _latent_weights(masks, latents.shape, config.latent_object_weight)  # [N, F, 1, h, w]

    def tokenize(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", max_length=transformer.config.max_text_seq_length,
                         truncation=True, return_tensors="pt").input_ids  # fmt: skip

    tokens = tokenize(list(captions))  # [N, L]
    empty = tokenize([""])  # [1, L]
    # [2, N, L]: each caption without its color word, and without its shape word (only when used)
    partial = (
        torch.stack([tokenize([_drop_word(c, a) for c in captions]) for a in ("color", "shape")])
        if config.word_dropout
        else None
    )

    def transformer_loss(step: int) -> torch.Tensor:
        gen = _generator(config, "transformer", step)
        index = torch.randint(0, len(latents), (config.batch_size,), generator=gen)
        ids = tokens[index].clone()
        if config.word_dropout:  # its own stream: without it, every batch is what it always was
            words = _generator(config, "transformer", -step - 1)
            dropped = torch.rand(config.batch_size, generator=words) < config.word_dropout
            which = torch.randint(0, 2, (config.batch_size,), generator=words)
            ids[dropped] = partial[which[dropped], index[dropped]]
        ids[torch.rand(config.batch_size, generator=gen) < config.empty_prompt_rate] = empty[0]
        x0 = latents[index]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=gen)
        noisy = scheduler.add_noise(x0, noise, t)
        prediction = transformer(noisy, text_encoder(ids)[0], t, return_dict=False)[0]
        return (latent_weights[index] * (prediction - scheduler.get_velocity(x0, noise, t)) ** 2).mean()

    params = [*transformer.parameters(), *text_encoder.parameters()]
    modules = {"transformer": transformer, "text_encoder": text_encoder}
    _run_stage(
        config, "transformer", modules, params, config.learning_rate, config.steps, transformer_loss, out,
        schedule=config.lr_schedule, decay_start=config.lr_decay_start, ema_decay=config.ema_decay,
    )  # fmt: skip
    _plot_losses(out)

    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=scheduler)  # fmt: skip
    with atomic_dir(out / PIPELINE_DIR) as tmp:
        pipe.save_pretrained(tmp)
        write_provenance(tmp, config, argv)
    return out / PIPELINE_DIR


def main(argv: list[str] | None = None) -> int:
    """Pretrain the world generator."""
    from reward.commands import config_parser

    argv = sys.argv[1:] if argv is None else argv
    (config,) = config_parser(PretrainConfig).parse_args_and_config(argv)
    print(f"pipeline written to {pretrain(config, argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
