"""`AlignConfig`: every option of an alignment run (Diffusion-DPO, RWR, GRPO), one flat dataclass.

Flat so that `trl.TrlParser` gives the command line and `--config x.yaml` for free; each field
has a help string (`python -m align.train --help`). The recipes under `configs/align/` set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from align.losses import RWR_WEIGHTINGS

__all__ = ["ALGORITHMS", "ONLINE_ALGORITHMS", "AlignConfig", "config_parser"]

ALGORITHMS: tuple[str, ...] = ("dpo", "rwr", "grpo", "reward_gradient")
# sample from the policy while training: they need `reward` and `online_prompts`
ONLINE_ALGORITHMS: tuple[str, ...] = ("grpo", "reward_gradient")


@dataclass
class AlignConfig:
    """Every option of a Diffusion-DPO / RWR / GRPO run (flat, so the CLI and `--config x.yaml` come free)."""

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
    # online algorithms (GRPO, reward_gradient): the reward and prompts they sample and score
    reward: str | None = field(
        default=None,
        metadata={
            "help": "GRPO / reward_gradient: the reward spec (align.rewards.resolve_reward): rule:color_match, "
            "MODEL_DIR[:DIMENSION], or a weighted mix MODEL_DIR:text_alignment=1+MODEL_DIR:visual_quality=0.5."
        },
    )
    online_prompts: str = field(
        default="synthetic:train",
        metadata={
            "help": "Online algorithms: training prompts, a text file (one per line) or synthetic:SPLIT."
        },
    )
    online_prompts_per_step: int = field(
        default=4, metadata={"help": "Online algorithms: prompts sampled per step (GRPO: per iteration)."}
    )
    grpo_group_size: int = field(
        default=4, metadata={"help": "GRPO: samples per prompt (G); advantages are standardised within them."}
    )
    online_sampling_steps: int = field(
        default=10, metadata={"help": "Online algorithms: DDIM steps per sampled trajectory."}
    )
    grpo_eta: float = field(
        default=1.0, metadata={"help": "GRPO: DDIM eta (> 0: stochastic transitions; 1 is DDPM-like noise)."}
    )
    online_guidance_scale: float = field(
        default=1.0,
        metadata={"help": "GRPO: classifier-free guidance while sampling and training (1: none)."},
    )
    grpo_clip_range: float = field(
        default=1e-4,
        metadata={
            "help": "GRPO: PPO clip range on the ratio of per-element mean log-probabilities (DDPO: 1e-4)."
        },
    )
    grpo_timestep_fraction: float = field(
        default=1.0, metadata={"help": "GRPO: share of each trajectory's steps that train."}
    )
    grpo_inner_epochs: int = field(
        default=1,
        metadata={
            "help": "GRPO: passes over each iteration's samples (later passes are off-policy: clipped)."
        },
    )
    grpo_kl_coef: float = field(
        default=0.0,
        metadata={"help": "GRPO: weight of the per-step KL to the reference (adapters disabled)."},
    )
    grpo_advantage_clip: float = field(default=5.0, metadata={"help": "GRPO: clamp advantages to +-this."})
    gradient_steps: int = field(
        default=1,
        metadata={
            "help": "reward_gradient: the last K denoising steps the reward's gradient flows through (DRaFT-K)."
        },
    )
    decode_latent_frames: int | None = field(
        default=None,
        metadata={
            "help": "reward_gradient: decode only the first this many latent frames (memory; default all)."
        },
    )
    checkpoint_decoder: bool = field(
        default=False, metadata={"help": "reward_gradient: gradient checkpointing in the VAE decoder."}
    )
    anchor_coef: float = field(
        default=0.0,
        metadata={
            "help": "reward_gradient: weight of ||v_theta - v_ref||^2 at the gradient steps (anchor to the base)."
        },
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
    steps: int = field(
        default=100, metadata={"help": "Optimizer steps to train for (GRPO: sample-score-update iterations)."}
    )
    train_batch_size: int = field(
        default=2,
        metadata={
            "help": "Pairs (DPO) or samples (RWR) per process per micro-step; GRPO: samples per optimizer step per process."
        },
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
    fsdp: bool = field(
        default=False,
        metadata={
            "help": "Shard the transformer across processes with torch's fully_shard (FSDP2, per CogVideoXBlock) "
            "instead of DDP; runs on GPUs and on CPU (gloo). Needs checkpointing_steps: 0 and eval_steps: 0 for now."
        },
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
    eval_height: int | None = field(
        default=None,
        metadata={"help": "Video height at evaluation (default: the generator's, its model card's)."},
    )
    eval_width: int | None = field(
        default=None, metadata={"help": "Video width at evaluation (default: the generator's)."}
    )
    eval_num_frames: int | None = field(
        default=None,
        metadata={"help": "Frames at evaluation, F - 1 a multiple of 8 (default: the generator's)."},
    )
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
        if self.fsdp and (self.checkpointing_steps or self.resume_from_checkpoint or self.eval_steps):
            raise ValueError(
                "fsdp: checkpoints, resume and evaluation during training are not supported with sharded "
                "weights yet; set checkpointing_steps: 0 and eval_steps: 0"
            )
        if self.eval_steps and not (self.eval_reward and self.eval_prompts):
            raise ValueError("eval_steps needs eval_reward and eval_prompts")
        if self.algorithm in ONLINE_ALGORITHMS and not self.reward:
            raise ValueError(
                f"algorithm {self.algorithm!r} samples and scores while it trains: give --reward"
            )
        if self.algorithm in ONLINE_ALGORITHMS and (self.fsdp or self.eval_steps):
            raise ValueError(
                f"algorithm {self.algorithm!r}: fsdp and eval_steps are for the offline algorithms"
            )
        if self.grpo_eta <= 0:
            raise ValueError(f"grpo_eta must be > 0 (a stochastic policy), got {self.grpo_eta}")
        if self.gradient_steps < 1 or self.gradient_steps > self.online_sampling_steps:
            raise ValueError(
                f"gradient_steps must be in [1, online_sampling_steps={self.online_sampling_steps}], got {self.gradient_steps}"
            )
        if not 0 < self.grpo_timestep_fraction <= 1:
            raise ValueError(f"grpo_timestep_fraction must be in (0, 1], got {self.grpo_timestep_fraction}")


def config_parser():
    """The parser of `AlignConfig` (`reward.commands.config_parser`): YAML `--config` plus overrides."""
    from reward.commands import config_parser as dataclass_parser

    return dataclass_parser(AlignConfig)
