"""Diffusion-DPO / reward-weighted (RWR) fine-tuning of CogVideoX with LoRA on Accelerate.

    accelerate launch -m align.train --config configs/align/tiny-dpo.yaml
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m align.train --config configs/align/cogvideox-2b-dpo.yaml
    torchrun --nproc_per_node 2 -m align.train --config configs/align/tiny-dpo.yaml      # CPU, gloo
    clevereward align-train --config configs/align/tiny-rwr.yaml --algorithm rwr

Data: for `dpo` a pair corpus from `align.preference` (columns `chosen_latents` /
`rejected_latents`: safetensors of the generator's final latents); for `rwr` a samples manifest
from `align.rerank` (every candidate's latents and scores). Latents are precomputed and prompt
embeddings are computed once per unique prompt: no video is encoded during training.

Design decisions:
- The DPO reference is the policy transformer with its LoRA adapters disabled, under no_grad:
  no second copy of the weights (`benchmarks/bench_align.py` measures the saving).
- The batch of every micro-step, its noise and its timesteps are pure functions of
  (seed, micro-step, position in the global batch). So a resumed run sees exactly the batches
  and noise of an uninterrupted one, and a run on N processes sees the same global batches as a
  run on one (each process takes its slice of the global batch).
- Winner and loser of a pair share noise and timestep and go through the model in one
  concatenated batch `[chosen; rejected]`.
- The model accelerate wraps (DDP / FSDP / DeepSpeed) is `DenoisingObjective`, a thin module whose
  forward returns per-example denoising errors, so the wrapper's hooks see every forward.
- The main process writes `log.jsonl` (one JSON object per logged step), checkpoints
  (`checkpoint-<step>`, complete or absent) and the final LoRA (`lora/`, loadable with
  `CogVideoXPipeline.load_lora_weights`).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from align import cogvideox
from align.losses import RWR_WEIGHTINGS, diffusion_dpo_loss, reward_weighted_loss
from reward.files import atomic_write, write_json

__all__ = [
    "ALGORITHMS",
    "AlignConfig",
    "DenoisingObjective",
    "PreferenceLatents",
    "ScoredLatents",
    "load_training_data",
    "batch_indices",
    "example_noise",
    "build_pipeline",
    "train",
    "main",
]

ALGORITHMS: tuple[str, ...] = ("dpo", "rwr")
LOG_NAME = "log.jsonl"
CHECKPOINT_PREFIX = "checkpoint-"
LORA_DIR = "lora"
LATENTS_KEY = "latents"
# Mixes the run seed with an example's global position into one generator seed (a large prime
# keeps (seed, position) pairs from colliding for any realistic number of positions).
_SEED_STRIDE = 1_000_003


@dataclass
class AlignConfig:
    """Every option of a Diffusion-DPO / RWR run (flat, so the CLI and `--config x.yaml` come free)."""

    # model
    generator: str = field(
        default="tiny",
        metadata={
            "help": "Generator to fine-tune: `tiny` (random tiny CogVideoX, CPU) or a CogVideoX folder / hub id."
        },
    )
    # data
    data: str | None = field(
        default=None,
        metadata={
            "help": "DPO: a pair corpus from `align.preference`; RWR: a samples folder (manifest) from `clevereward rerank`."
        },
    )
    algorithm: str = field(default="dpo", metadata={"help": f"Training objective: one of {ALGORITHMS}."})
    beta: float = field(
        default=100.0,
        metadata={
            "help": "Diffusion-DPO beta (see align.losses.diffusion_dpo_loss): thousands for real CogVideoX, tens to hundreds for the tiny one."
        },
    )
    temperature: float = field(
        default=0.1,
        metadata={"help": "RWR temperature (reward units for softmax, standard deviations for exp)."},
    )
    rwr_weighting: str = field(
        default="softmax", metadata={"help": f"RWR weights from rewards: one of {RWR_WEIGHTINGS}."}
    )
    rwr_max_weight: float = field(default=10.0, metadata={"help": "RWR: cap on any one example's weight."})
    rwr_per_prompt: bool = field(
        default=True,
        metadata={
            "help": "RWR: z-score rewards within each prompt's candidates first (rewards of different prompts are not comparable)."
        },
    )
    reward_name: str | None = field(
        default=None,
        metadata={"help": "RWR: which manifest score to weight by (default: the manifest's ranking reward)."},
    )
    # LoRA
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA alpha (scale = alpha / rank)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"],
        metadata={"help": "Transformer modules that get LoRA adapters."},
    )
    # optimisation
    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW learning rate of the LoRA parameters."}
    )
    adam_weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    lr_warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps, then constant."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    steps: int = field(default=100, metadata={"help": "Optimizer steps to train for."})
    train_batch_size: int = field(
        default=2, metadata={"help": "Pairs (DPO) or samples (RWR) per process per micro-step."}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimizer step."})
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "`no`, `fp16` or `bf16` (default: the accelerate launch config's): frozen weights are cast to it, LoRA stays fp32."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute transformer activations in backward."}
    )
    use_8bit_adam: bool = field(
        default=False,
        metadata={
            "help": "bitsandbytes AdamW8bit instead of torch AdamW (tensors under 4096 elements keep 32-bit state)."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of batches, noise, timesteps and the LoRA initialisation."}
    )
    # outputs
    output_dir: str = field(
        default="outputs/align", metadata={"help": "Where checkpoints, log.jsonl and lora/ go."}
    )
    checkpointing_steps: int = field(
        default=50, metadata={"help": "Save a resumable checkpoint every this many steps (0: never)."}
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Resume from the latest checkpoint in output_dir (same as --resume_from_checkpoint latest)."
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "`latest` or a checkpoint folder to resume from."}
    )
    logging_steps: int = field(
        default=1, metadata={"help": "Log (log.jsonl and trackers) every this many steps."}
    )
    report_to: str = field(
        default="none", metadata={"help": "Trackers for accelerate: `none`, `wandb`, `tensorboard`, `all`."}
    )
    # evaluation during training
    eval_steps: int = field(
        default=0, metadata={"help": "Sample and score the eval prompts every this many steps (0: never)."}
    )
    eval_reward: str | None = field(
        default=None, metadata={"help": "Reward spec for evaluation (`rule:color_match`, a model folder)."}
    )
    eval_prompts: list[str] | None = field(default=None, metadata={"help": "Prompts sampled at evaluation."})
    eval_seeds: list[int] = field(
        default_factory=lambda: [0, 1], metadata={"help": "Seeds sampled per eval prompt."}
    )
    eval_num_inference_steps: int = field(default=50, metadata={"help": "Sampling steps at evaluation."})
    eval_guidance_scale: float = field(
        default=6.0, metadata={"help": "Classifier-free guidance scale at evaluation (1: none)."}
    )

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.rwr_weighting not in RWR_WEIGHTINGS:
            raise ValueError(f"rwr_weighting must be one of {RWR_WEIGHTINGS}, got {self.rwr_weighting!r}")
        if self.resume and self.resume_from_checkpoint is None:
            self.resume_from_checkpoint = "latest"
        if self.eval_steps and not (self.eval_reward and self.eval_prompts):
            raise ValueError("eval_steps needs eval_reward and eval_prompts")


def _read_latents(path: Path, where: str) -> torch.Tensor:
    """One example's latents [F_lat, C_lat, h, w] from a safetensors file; errors name the file and row."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: latents file {path} does not exist")
    tensors = load_file(str(path))
    if LATENTS_KEY not in tensors:
        raise ValueError(f"{where}: {path} has no {LATENTS_KEY!r} tensor (keys: {sorted(tensors)})")
    latents = tensors[LATENTS_KEY]
    if latents.dim() != 4:
        raise ValueError(
            f"{where}: {path} holds latents of shape {tuple(latents.shape)}, expected [F, C, h, w]"
        )
    return latents


@dataclass
class PreferenceLatents:
    """DPO data: per pair the prompt and the chosen / rejected latents files."""

    prompts: list[str]
    chosen: list[Path]
    rejected: list[Path]

    def __len__(self) -> int:
        return len(self.prompts)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        where = f"pair {index} ({self.prompts[index]!r})"
        return _read_latents(self.chosen[index], where), _read_latents(self.rejected[index], where)


@dataclass
class ScoredLatents:
    """RWR data: per sample the prompt, its latents file and its reward."""

    prompts: list[str]
    latents: list[Path]
    rewards: list[float]

    def __len__(self) -> int:
        return len(self.prompts)

    def load(self, index: int) -> torch.Tensor:
        return _read_latents(self.latents[index], f"sample {index} ({self.prompts[index]!r})")


def load_training_data(config: AlignConfig) -> tuple[PreferenceLatents | ScoredLatents, dict]:
    """The training examples of `config.data` and a report of what was skipped and why.

    DPO reads the corpus's train split; RWR reads every manifest candidate with latents and a
    finite score. Rows without latents are skipped and counted, never silently dropped.
    """
    if config.data is None:
        raise ValueError("no training data: set --data (a pair corpus for dpo, a samples folder for rwr)")
    skipped: list[dict] = []
    if config.algorithm == "dpo":
        from reward.pairs import load_corpus

        corpus = load_corpus(config.data)
        split = corpus.pairs["train"]
        for column in ("chosen_latents", "rejected_latents"):
            if column not in split.column_names:
                raise ValueError(
                    f"{config.data}: pairs have no {column!r} column (build them with align.preference)"
                )
        prompts, chosen, rejected = [], [], []
        for i, row in enumerate(split):
            if not row["chosen_latents"] or not row["rejected_latents"]:
                skipped.append({"row": i, "reason": "no latents"})
                continue
            prompts.append(row["prompt"])
            chosen.append(corpus.video_path(row["chosen_latents"]))
            rejected.append(corpus.video_path(row["rejected_latents"]))
        data: PreferenceLatents | ScoredLatents = PreferenceLatents(prompts, chosen, rejected)
    else:
        from align.manifest import load_manifest

        root = Path(config.data)
        root = root if root.is_dir() else root.parent
        manifest = load_manifest(config.data)
        name = config.reward_name or manifest["rewards"][0]["name"]
        prompts, paths, rewards = [], [], []
        for entry in manifest["prompts"]:
            for cand in entry["candidates"]:
                where = f"prompt {entry['index']} candidate {cand['candidate']}"
                if name not in cand["scores"]:
                    raise ValueError(
                        f"{config.data}: {where} has no score {name!r} (scores: {sorted(cand['scores'])})"
                    )
                if cand["latents"] is None or cand["scores"][name] is None:
                    skipped.append(
                        {"row": where, "reason": "no latents" if cand["latents"] is None else "no score"}
                    )
                    continue
                prompts.append(entry["prompt"])
                paths.append(root / cand["latents"])
                rewards.append(float(cand["scores"][name]))
        if config.rwr_per_prompt:
            from align.rewards import normalize_per_prompt

            rewards = normalize_per_prompt(torch.tensor(rewards), prompts).tolist()
        data = ScoredLatents(prompts, paths, rewards)
    if len(data) == 0:
        raise ValueError(
            f"{config.data}: no usable training examples ({len(skipped)} skipped: {skipped[:3]})"
        )
    return data, {"examples": len(data), "skipped": len(skipped), "skipped_rows": skipped}


def batch_indices(num_examples: int, global_batch: int, micro_step: int, seed: int) -> list[int]:
    """Dataset indices of the global batch of `micro_step`: epoch-wise seeded permutations, in order.

    Global position p = micro_step * global_batch + j reads element p % N of the permutation of
    epoch p // N, so batches run across epoch boundaries without dropping examples.
    """
    indices = []
    permutations: dict[int, torch.Tensor] = {}
    for position in range(micro_step * global_batch, (micro_step + 1) * global_batch):
        epoch = position // num_examples
        if epoch not in permutations:
            gen = torch.Generator().manual_seed(seed * _SEED_STRIDE + epoch)
            permutations[epoch] = torch.randperm(num_examples, generator=gen)
        indices.append(int(permutations[epoch][position % num_examples]))
    return indices


def example_noise(
    shape: torch.Size, num_train_timesteps: int, seed: int, position: int
) -> tuple[torch.Tensor, int]:
    """Noise [F, C, h, w] and a timestep for the example at global `position`: a function of (seed, position) only."""
    gen = torch.Generator().manual_seed(seed * _SEED_STRIDE + position)
    noise = torch.randn(shape, generator=gen)
    timestep = int(torch.randint(0, num_train_timesteps, (1,), generator=gen))
    return noise, timestep


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


def _resolve_checkpoint(config: AlignConfig) -> Path | None:
    if config.resume_from_checkpoint is None:
        return None
    if config.resume_from_checkpoint != "latest":
        path = Path(config.resume_from_checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such checkpoint folder")
        return path
    found = sorted(
        Path(config.output_dir).glob(f"{CHECKPOINT_PREFIX}*"),
        key=lambda p: int(p.name.removeprefix(CHECKPOINT_PREFIX)),
    )
    return found[-1] if found else None  # nothing saved yet: start fresh


def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _keep_trainable_weights(models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
    """accelerate save-state pre-hook: a checkpoint holds the trained (LoRA) weights, not the frozen base.

    The base is rebuilt from the generator at resume, so writing it again (about 11 GB for
    CogVideoX-5b's transformer in bf16) would only cost disk and time. `weights` is empty under
    FSDP / DeepSpeed, which save through their own plugins.
    """
    for i, state in enumerate(weights):
        trainable = _trainable_names(models[i])
        weights[i] = {name: tensor for name, tensor in state.items() if name in trainable}


def _load_trainable_weights(models: list[nn.Module], input_dir: str) -> None:
    """accelerate load-state pre-hook, the inverse of `_keep_trainable_weights` (file names are accelerate's)."""
    from accelerate.utils import SAFE_MODEL_NAME

    for i, model in enumerate(models):
        path = Path(input_dir) / (
            f"{SAFE_MODEL_NAME}_{i}.safetensors" if i else f"{SAFE_MODEL_NAME}.safetensors"
        )
        state = load_file(path)
        trainable = _trainable_names(model)
        if set(state) != trainable:
            raise ValueError(
                f"{path}: holds {len(state)} tensors but this run trains {len(trainable)} parameters "
                f"({len(set(state) - trainable)} unexpected, {len(trainable - set(state))} missing): "
                "resume with the LoRA rank, targets and process layout the checkpoint was written with"
            )
        model.load_state_dict(state, strict=False)  # the frozen base is absent on purpose
    models.clear()  # loaded: accelerate must not load them again


def _save_checkpoint(accelerator, output_dir: Path, step: int) -> None:
    """accelerator.save_state into a temporary folder that the main process then renames: complete or absent."""
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    tmp = output_dir / f".{final.name}.tmp"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a killed run
        tmp.mkdir(parents=True)  # before any process writes its RNG state into it
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # every process: RNG states are per process; weights written once
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log records up to `step` (a resumed run rewrites what came after its checkpoint)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if record.get("step", 0) <= step:
            kept.append(line)
    with atomic_write(path) as f:
        f.write("".join(f"{line}\n" for line in kept))


def _micro_batch(
    data,
    config: AlignConfig,
    embeds: torch.Tensor,
    prompt_index: dict[str, int],
    micro_step: int,
    process_index: int,
    num_processes: int,
    num_train_timesteps: int,
    device,
) -> dict[str, torch.Tensor]:
    """This process's slice of the global batch of `micro_step`, with its noise and timesteps, on `device`."""
    per_device = config.train_batch_size
    global_batch = per_device * num_processes
    indices = batch_indices(len(data), global_batch, micro_step, config.seed)
    mine = range(process_index * per_device, (process_index + 1) * per_device)
    rows = {"latents": [], "rejected": [], "noise": [], "timesteps": [], "embeds": [], "rewards": []}
    for j in mine:
        index = indices[j]
        if isinstance(data, PreferenceLatents):
            chosen, rejected = data.load(index)
            rows["rejected"].append(rejected)
        else:
            chosen = data.load(index)
            rows["rewards"].append(data.rewards[index])
        noise, timestep = example_noise(
            chosen.shape, num_train_timesteps, config.seed, micro_step * global_batch + j
        )
        rows["latents"].append(chosen)
        rows["noise"].append(noise)
        rows["timesteps"].append(timestep)
        rows["embeds"].append(embeds[prompt_index[data.prompts[index]]])
    batch = {
        "latents": torch.stack(rows["latents"]),  # [b, F, C, h, w]
        "noise": torch.stack(rows["noise"]),  # [b, F, C, h, w]
        "timesteps": torch.tensor(rows["timesteps"], dtype=torch.long),  # [b]
        "embeds": torch.stack(rows["embeds"]),  # [b, L, D]
    }
    if rows["rejected"]:
        batch["rejected"] = torch.stack(rows["rejected"])  # [b, F, C, h, w]
    if rows["rewards"]:
        batch["rewards"] = torch.tensor(rows["rewards"], dtype=torch.float32)  # [b]
        # RWR normalises weights over the global batch, so N processes weight exactly like one
        batch["batch_rewards"] = torch.tensor(
            [data.rewards[i] for i in indices], dtype=torch.float32
        )  # [b * N]
    return {k: v.to(device) for k, v in batch.items()}


def _loss(
    objective, batch: dict[str, torch.Tensor], config: AlignConfig, transformer
) -> tuple[torch.Tensor, dict]:
    """Per-example loss [b] and metrics of one micro-batch (DPO: one [chosen; rejected] pass each for policy and reference)."""
    if config.algorithm == "rwr":
        err = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])  # [b]
        return reward_weighted_loss(
            err,
            batch["rewards"],
            config.temperature,
            config.rwr_weighting,
            config.rwr_max_weight,
            batch["batch_rewards"],
        )
    latents = torch.cat([batch["latents"], batch["rejected"]])  # [2b, F, C, h, w], chosen first
    noise = torch.cat([batch["noise"], batch["noise"]])  # [2b, F, C, h, w]: a pair shares its noise
    timesteps = torch.cat([batch["timesteps"], batch["timesteps"]])  # [2b]
    embeds = torch.cat([batch["embeds"], batch["embeds"]])  # [2b, L, D]
    with torch.no_grad(), cogvideox.adapters_disabled(transformer):
        ref_w, ref_l = objective(latents, embeds, noise, timesteps).chunk(2)  # [b] each
    err_w, err_l = objective(latents, embeds, noise, timesteps).chunk(2)  # [b] each
    return diffusion_dpo_loss(err_w, err_l, ref_w, ref_l, config.beta)


def train(config: AlignConfig, pipe=None) -> dict:
    """Train LoRA adapters on `pipe.transformer` (built from `config` when None); returns a summary.

    On return the main process has written `output_dir/lora` and `output_dir/summary.json`;
    `pipe.transformer` holds the trained adapters (enabled).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    # AcceleratorState is a process-wide singleton: an earlier Accelerator in this process (the
    # reward trainer in `clevereward demo`, a notebook's previous run) fixed its mixed precision and
    # a new one with another value would raise. Start from a fresh state, as transformers'
    # TrainingArguments does; the PartialState (process group) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        # accelerate runs several CPU processes (torchrun, gloo) as one job only when told cpu=True.
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=None if config.report_to == "none" else config.report_to,
    )
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
    unique_prompts = sorted(set(data.prompts))
    prompt_index = {p: i for i, p in enumerate(unique_prompts)}
    with torch.no_grad():
        embeds = cogvideox.encode_prompts(pipe, unique_prompts)[0].to("cpu", torch.float32)  # [P, L, D]
    text_device = pipe.text_encoder.device
    pipe.text_encoder.to("cpu")  # T5-XXL is 9.5 GB: off the GPU while training; back for sampling

    params = [p for p in transformer.parameters() if p.requires_grad]
    if config.use_8bit_adam:
        import bitsandbytes as bnb

        optimizer_cls = bnb.optim.AdamW8bit
    else:
        optimizer_cls = torch.optim.AdamW
    optimizer = optimizer_cls(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes
    )
    objective, optimizer, lr_scheduler = accelerator.prepare(
        DenoisingObjective(transformer, pipe.scheduler), optimizer, lr_scheduler
    )

    accelerator.register_save_state_pre_hook(_keep_trainable_weights)
    accelerator.register_load_state_pre_hook(_load_trainable_weights)
    start_step = 0
    checkpoint = _resolve_checkpoint(config)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start_step = int(checkpoint.name.removeprefix(CHECKPOINT_PREFIX))
    log_path = output_dir / LOG_NAME
    if accelerator.is_main_process:
        _truncate_log(log_path, start_step)
        write_json(output_dir / "train_config.json", asdict(config))
    accelerator.init_trackers("clevereward-align", config={k: str(v) for k, v in asdict(config).items()})

    num_train_timesteps = pipe.scheduler.config.num_train_timesteps
    objective.train()
    progress = tqdm(
        range(start_step, config.steps),
        desc=f"align {config.algorithm}",
        disable=not accelerator.is_main_process,
    )
    last: dict = {}
    for step in progress:
        sums: dict[str, float] = {}
        for k in range(config.gradient_accumulation_steps):
            batch = _micro_batch(
                data,
                config,
                embeds,
                prompt_index,
                step * config.gradient_accumulation_steps + k,
                accelerator.process_index,
                accelerator.num_processes,
                num_train_timesteps,
                accelerator.device,
            )
            with accelerator.accumulate(objective):
                loss, metrics = _loss(objective, batch, config, transformer)
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
        done = step + 1
        last = {"step": done, **sums, "lr": lr_scheduler.get_last_lr()[0]}
        if done % config.logging_steps == 0 or done == config.steps:
            accelerator.log(last, step=done)
            if accelerator.is_main_process:
                with log_path.open("a") as f:
                    f.write(json.dumps(last) + "\n")
            progress.set_postfix(loss=f"{last['loss']:.4f}")
        if config.checkpointing_steps and done % config.checkpointing_steps == 0:
            _save_checkpoint(accelerator, output_dir, done)
        if config.eval_steps and done % config.eval_steps == 0:
            _evaluate_during_training(accelerator, pipe, config, done, text_device)

    accelerator.wait_for_everyone()
    pipe.text_encoder.to(text_device)
    summary = {
        "algorithm": config.algorithm,
        "steps": config.steps,
        "resumed_from": start_step,
        "last": last,
        "data": data_report,
    }
    if accelerator.is_main_process:
        cogvideox.save_lora(accelerator.unwrap_model(objective).transformer, output_dir / LORA_DIR)
        write_json(output_dir / "summary.json", summary)
    accelerator.end_training()
    return summary


def _evaluate_during_training(accelerator, pipe, config: AlignConfig, step: int, text_device) -> None:
    """Main process: sample the eval prompts x seeds with the current policy, log the mean reward (and videos to wandb)."""
    if accelerator.is_main_process:
        from align.evaluation import sample_and_score
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
        )
        pipe.text_encoder.to("cpu")
        pipe.transformer.train()
        scores = result["scores"][reward.name]
        record = {"step": step, f"eval/{reward.name}": float(torch.tensor(scores).mean())}
        accelerator.log(record, step=step)
        with (Path(config.output_dir) / LOG_NAME).open("a") as f:
            f.write(json.dumps(record) + "\n")
        if "wandb" in config.report_to or config.report_to == "all":
            import wandb

            tracker = accelerator.get_tracker("wandb", unwrap=True)
            videos = [
                wandb.Video((v * 255).to(torch.uint8).numpy(), fps=8, caption=f"{p} | {reward.name}={s:.3f}")
                for v, p, s in zip(result["videos"], result["prompts"], scores)
            ]
            tracker.log({"eval/samples": videos}, step=step)
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> int:
    """Diffusion-DPO / RWR fine-tuning of a CogVideoX generator with LoRA."""
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(argv)
    train(config)
    return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
