"""Diffusion-DPO / reward-weighted (RWR) fine-tuning of CogVideoX with LoRA on Accelerate.

    accelerate launch -m align.train --config configs/align/tiny-dpo.yaml
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m align.train --config configs/align/cogvideox-2b-dpo.yaml
    torchrun --nproc_per_node 2 -m align.train --config configs/align/tiny-dpo.yaml      # CPU, gloo
    clevereward align-train --config configs/align/tiny-rwr.yaml --algorithm rwr

The run's options are `align.config.AlignConfig`; its data (latents, batches, noise) is
`align.data`; its checkpoints are `align.checkpoint`. This module holds the loop: `train` sets
up, then repeats `training_step` → `log_step` → checkpoint → evaluation.

Design decisions:
- The DPO reference is the policy transformer with its LoRA adapters disabled, under no_grad:
  no second copy of the weights (`benchmarks/bench_align.py` measures the saving).
- Winner and loser of a pair share noise and timestep and go through the model in one
  concatenated batch `[chosen; rejected]`.
- The model accelerate wraps (DDP / FSDP / DeepSpeed) is `DenoisingObjective`, a thin module whose
  forward returns per-example denoising errors, so the wrapper's hooks see every forward.
- Each algorithm is one loss function of a micro-batch (`LOSSES`); the loop does not branch on it.
- The main process appends `log.jsonl` (one JSON object per logged step), writes checkpoints
  (`checkpoint-<step>`, complete or absent) and the final LoRA (`lora/`, loadable with
  `CogVideoXPipeline.load_lora_weights`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from align import cogvideox
from align.checkpoint import (
    register_lora_only_hooks,
    resume_state,
    save_checkpoint,
    truncate_log,
)
from align.config import AlignConfig, config_parser
from align.data import load_training_data, micro_batch
from align.losses import diffusion_dpo_loss, reward_weighted_loss
from reward.files import append_jsonl, write_json

__all__ = [
    "LOG_NAME",
    "LORA_DIR",
    "LOSSES",
    "DenoisingObjective",
    "build_pipeline",
    "dpo_loss",
    "rwr_loss",
    "training_step",
    "log_step",
    "train",
    "run",
    "main",
]

LOG_NAME = "log.jsonl"
LORA_DIR = "lora"
EVAL_PREFIX = "eval-"  # eval-<step>/: the evaluation samples of that step


class DenoisingObjective(nn.Module):
    """Per-example denoising errors of `transformer`: the module accelerate wraps and trains.

    forward(latents [B, F, C, h, w], prompt_embeds [B, L, D], noise [B, F, C, h, w], timesteps [B])
    -> err [B] (`align.cogvideox.denoising_error`).
    """

    def __init__(self, transformer: nn.Module, scheduler):
        super().__init__()
        self.transformer = transformer
        self.scheduler = scheduler

    def forward(self, latents, prompt_embeds, noise, timesteps) -> torch.Tensor:
        return cogvideox.denoising_error(
            self.transformer, self.scheduler, latents, prompt_embeds, noise, timesteps
        )


def build_pipeline(
    config: AlignConfig, device: str | torch.device | None = None, mixed_precision: str | None = None
):
    """The generator pipeline with LoRA adapters on its transformer (zero-initialised B: policy = base).

    Frozen weights are loaded in the mixed-precision dtype (float32 for `no`); LoRA stays float32.
    """
    dtype = _weight_dtype(mixed_precision or config.mixed_precision)
    pipe = cogvideox.load_pipeline(
        config.generator, dtype=dtype, device=None if device is None else str(device)
    )
    torch.manual_seed(config.seed)  # LoRA A's initialisation
    cogvideox.add_lora(
        pipe.transformer,
        rank=config.lora_rank,
        alpha=config.lora_alpha,
        target_modules=tuple(config.lora_target_modules),
    )
    return pipe


def _weight_dtype(mixed_precision: str | None) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision or "no", torch.float32)


def dpo_loss(
    objective: nn.Module, batch: dict[str, torch.Tensor], config: AlignConfig, transformer: nn.Module
) -> tuple[torch.Tensor, dict]:
    """Diffusion-DPO on a micro-batch of pairs: loss [b] and metrics (one [chosen; rejected] pass each for policy and reference)."""
    latents = torch.cat([batch["latents"], batch["rejected"]])  # [2b, F, C, h, w], chosen first
    noise = torch.cat([batch["noise"], batch["noise"]])  # [2b, F, C, h, w]: a pair shares its noise
    timesteps = torch.cat([batch["timesteps"], batch["timesteps"]])  # [2b]
    embeds = torch.cat([batch["embeds"], batch["embeds"]])  # [2b, L, D]
    with torch.no_grad(), cogvideox.adapters_disabled(transformer):
        ref_w, ref_l = objective(latents, embeds, noise, timesteps).chunk(2)  # [b] each
    err_w, err_l = objective(latents, embeds, noise, timesteps).chunk(2)  # [b] each
    return diffusion_dpo_loss(err_w, err_l, ref_w, ref_l, config.beta)


def rwr_loss(
    objective: nn.Module, batch: dict[str, torch.Tensor], config: AlignConfig, transformer: nn.Module
) -> tuple[torch.Tensor, dict]:
    """Reward-weighted regression on a micro-batch of scored samples: loss [b] and metrics."""
    err = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])  # [b]
    return reward_weighted_loss(
        err,
        batch["rewards"],
        config.temperature,
        config.rwr_weighting,
        config.rwr_max_weight,
        batch["batch_rewards"],
    )


# algorithm -> its loss of one micro-batch: (objective, batch, config, transformer) -> (loss [b], metrics)
LOSSES: dict[str, Callable] = {"dpo": dpo_loss, "rwr": rwr_loss}


def _shard(transformer: nn.Module) -> None:
    """FSDP2: every CogVideoXBlock, then the rest of the transformer, sharded across the processes."""
    from torch.distributed.fsdp import fully_shard

    for block in transformer.transformer_blocks:
        fully_shard(block)
    fully_shard(transformer)


def _whole_lora_state(transformer: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors gathered whole from their shards (a collective: call it on every process)."""
    from torch.distributed.tensor import DTensor

    # clone() waits for the all-gather on every rank; a collective left pending (the ranks that
    # do not save never read the result) aborts the process when the process group is destroyed.
    return {
        name: (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().clone()
        for name, tensor in transformer.state_dict().items()
        if "lora_" in name
    }


def _accelerator(config: AlignConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # AcceleratorState is a process-wide singleton: an earlier Accelerator in this process (the
    # reward trainer in `clevereward demo`, a notebook's previous run) fixed its mixed precision and
    # a new one with another value would raise. Start from a fresh state, as transformers'
    # TrainingArguments does; the PartialState (process group) is kept.
    AcceleratorState._reset_state()
    return Accelerator(
        # accelerate runs several CPU processes (torchrun, gloo) as one job only when told cpu=True.
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=None if config.report_to == "none" else config.report_to,
    )


def _optimizer(params: list[nn.Parameter], config: AlignConfig) -> torch.optim.Optimizer:
    if config.use_8bit_adam:
        import bitsandbytes as bnb

        optimizer_cls = bnb.optim.AdamW8bit
    else:
        optimizer_cls = torch.optim.AdamW
    return optimizer_cls(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay)


def _encode_once(pipe, prompts: list[str]) -> tuple[torch.Tensor, dict[str, int]]:
    """T5 embeddings [P, L, D] (CPU, float32) of the unique prompts, and prompt -> row."""
    unique_prompts = sorted(set(prompts))
    with torch.no_grad():
        embeds = cogvideox.encode_prompts(pipe, unique_prompts)[0].to("cpu", torch.float32)  # [P, L, D]
    return embeds, {p: i for i, p in enumerate(unique_prompts)}


def training_step(
    accelerator,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_scheduler,
    params: list[nn.Parameter],
    batches: Callable[[int], dict[str, torch.Tensor]],
    step: int,
    config: AlignConfig,
    transformer: nn.Module,
) -> dict[str, float]:
    """One optimizer step over `gradient_accumulation_steps` micro-batches (`batches(micro_step)`).

    Returns the loss and the loss metrics, averaged over micro-batches and processes.
    """
    loss_fn = LOSSES[config.algorithm]
    sums: dict[str, float] = {}
    for k in range(config.gradient_accumulation_steps):
        batch = batches(step * config.gradient_accumulation_steps + k)
        with accelerator.accumulate(objective):
            loss, metrics = loss_fn(objective, batch, config, transformer)
            accelerator.backward(loss.mean())
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        values = torch.stack([loss.detach().mean(), *metrics.values()])
        values = accelerator.reduce(values, reduction="mean")  # mean over processes
        for name, value in zip(["loss", *metrics], values.tolist()):
            sums[name] = sums.get(name, 0.0) + value / config.gradient_accumulation_steps
    return sums


def log_step(accelerator, log_path: Path, record: dict) -> None:
    """Send `record` to the trackers and, on the main process, append it to `log.jsonl`."""
    accelerator.log(record, step=record["step"])
    if accelerator.is_main_process:
        append_jsonl(log_path, [record])


def train(config: AlignConfig, pipe=None) -> dict:
    """Train LoRA adapters on `pipe.transformer` (built from `config` when None); returns a summary.

    On return the main process has written `output_dir/lora` and `output_dir/summary.json`;
    `pipe.transformer` holds the trained adapters (enabled).
    """
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    accelerator = _accelerator(config)
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data, data_report = load_training_data(config)
    if pipe is None:
        pipe = build_pipeline(config, accelerator.device, accelerator.mixed_precision)
    transformer = pipe.transformer
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()

    # Each unique prompt is encoded once; the text encoder is not needed again for training.
    embeds, prompt_index = _encode_once(pipe, data.prompts)
    text_device = pipe.text_encoder.device
    pipe.text_encoder.to("cpu")  # T5-XXL is 9.5 GB: off the GPU while training; back for sampling

    sharded = config.fsdp and accelerator.num_processes > 1
    if sharded:
        _shard(transformer)  # before the optimizer: sharding replaces the parameters
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config)
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes
    )
    objective = DenoisingObjective(transformer, pipe.scheduler)
    if sharded:  # FSDP reduces the gradients itself: no DDP wrapper around it
        optimizer, lr_scheduler = accelerator.prepare(optimizer, lr_scheduler)
    else:
        objective, optimizer, lr_scheduler = accelerator.prepare(objective, optimizer, lr_scheduler)
    register_lora_only_hooks(accelerator)
    start_step = resume_state(accelerator, config)
    log_path = output_dir / LOG_NAME
    if accelerator.is_main_process:
        truncate_log(log_path, start_step)
        write_json(output_dir / "train_config.json", asdict(config))
    accelerator.init_trackers("clevereward-align", config={k: str(v) for k, v in asdict(config).items()})

    num_train_timesteps = pipe.scheduler.config.num_train_timesteps

    def batches(micro_step: int) -> dict[str, torch.Tensor]:
        return micro_batch(
            data,
            config,
            embeds,
            prompt_index,
            micro_step,
            accelerator.process_index,
            accelerator.num_processes,
            num_train_timesteps,
            accelerator.device,
        )

    objective.train()
    progress = tqdm(
        range(start_step, config.steps),
        desc=f"align {config.algorithm}",
        disable=not accelerator.is_main_process,
    )
    last: dict = {}
    for step in progress:
        metrics = training_step(
            accelerator, objective, optimizer, lr_scheduler, params, batches, step, config, transformer
        )
        done = step + 1
        last = {"step": done, **metrics, "lr": lr_scheduler.get_last_lr()[0]}
        if done % config.logging_steps == 0 or done == config.steps:
            log_step(accelerator, log_path, last)
            progress.set_postfix(loss=f"{last['loss']:.4f}")
        if config.checkpointing_steps and done % config.checkpointing_steps == 0:
            save_checkpoint(accelerator, output_dir, done)
        if config.eval_steps and done % config.eval_steps == 0:
            _evaluate_during_training(accelerator, pipe, config, done, text_device)

    accelerator.wait_for_everyone()
    pipe.text_encoder.to(text_device)
    summary = {
        "algorithm": config.algorithm,
        "steps": config.steps,
        "resumed_from": start_step,
        "sharded": sharded,  # FSDP across processes (else DDP, or one process)
        "last": last,
        "data": data_report,
    }
    lora_state = _whole_lora_state(transformer) if sharded else None  # a collective: every process
    if accelerator.is_main_process:
        cogvideox.save_lora(
            accelerator.unwrap_model(objective).transformer, output_dir / LORA_DIR, lora_state
        )
        write_json(output_dir / "summary.json", summary)
    accelerator.end_training()
    return summary


def _evaluate_during_training(accelerator, pipe, config: AlignConfig, step: int, text_device) -> None:
    """Main process: sample the eval prompts x seeds with the current policy, log the mean reward (and videos to wandb)."""
    if accelerator.is_main_process:
        from align.evaluation import sample_and_score, write_samples
        from align.rewards import resolve_reward

        reward = resolve_reward(config.eval_reward)
        pipe.transformer.eval()
        pipe.text_encoder.to(text_device)
        result = sample_and_score(
            pipe,
            list(config.eval_prompts),
            list(config.eval_seeds),
            [reward],
            num_inference_steps=config.eval_num_inference_steps,
            guidance_scale=config.eval_guidance_scale,
            height=config.eval_height,
            width=config.eval_width,
            num_frames=config.eval_num_frames,
        )
        pipe.text_encoder.to("cpu")
        pipe.transformer.train()
        scores = result["scores"][reward.name]
        record = {"step": step, f"eval/{reward.name}": float(torch.tensor(scores).mean())}
        paths = write_samples(Path(config.output_dir) / f"{EVAL_PREFIX}{step}", result)
        log_step(accelerator, Path(config.output_dir) / LOG_NAME, record)
        if "wandb" in config.report_to or config.report_to == "all":
            import wandb

            tracker = accelerator.get_tracker("wandb", unwrap=True)
            videos = [
                wandb.Video(str(path), caption=f"{p} | {reward.name}={s:.3f}")
                for path, p, s in zip(paths, result["prompts"], scores)
            ]
            tracker.log({"eval/samples": videos}, step=step)
    accelerator.wait_for_everyone()


def run(config: AlignConfig, pipe=None) -> dict:
    """Train with `config.algorithm`: the offline loop above (DPO, RWR) or an online trainer."""
    if config.algorithm == "grpo":
        from align.grpo import train_grpo

        return train_grpo(config, pipe)
    if config.algorithm == "reward_gradient":
        from align.reward_gradient import train_reward_gradient

        return train_reward_gradient(config, pipe)
    return train(config, pipe)


def main(argv: list[str] | None = None) -> int:
    """Diffusion-DPO / RWR / GRPO fine-tuning of a CogVideoX generator with LoRA."""
    (config,) = config_parser().parse_args_and_config(argv)
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
