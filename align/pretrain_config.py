"""`PretrainConfig`: every option of `clevereward generator pretrain` (`align.pretrain`), one flat dataclass.

Flat so that `trl.TrlParser` gives the command line and `--config x.yaml` for free; each field has a
help string (`clevereward generator pretrain --help`). The recipes under `configs/generator/` set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LR_SCHEDULES", "PretrainConfig"]

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class PretrainConfig:
    """Every option of `clevereward generator pretrain` (flat, so `--config x.yaml` works)."""

    output_dir: str = field(
        default="runs/world-generator", metadata={"help": "Where the stages and pipeline/ go."}
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the clips, the initial weights, batches and noise."}
    )
    clips_per_caption: int = field(
        default=32, metadata={"help": "Training clips rendered per train-split caption."}
    )
    height: int = field(
        default=32, metadata={"help": "Frame height (the world renders 64 px; resized down)."}
    )
    width: int = field(default=32, metadata={"help": "Frame width."})
    num_frames: int = field(
        default=9, metadata={"help": "Frames per clip: F - 1 a multiple of 2 x time_compression."}
    )
    # VAE
    vae_channels: list[int] = field(
        default_factory=lambda: [16, 32],
        metadata={"help": "VAE block widths; n blocks = 2^(n-1)x spatial compression."},
    )
    latent_channels: int = field(default=4, metadata={"help": "VAE latent channels."})
    time_compression: int = field(default=2, metadata={"help": "VAE temporal compression ratio."})
    vae_steps: int = field(default=1500, metadata={"help": "VAE optimizer steps."})
    vae_batch_size: int = field(default=8, metadata={"help": "Clips per VAE step."})
    vae_learning_rate: float = field(default=1e-3, metadata={"help": "VAE AdamW learning rate."})
    object_weight: float = field(
        default=10.0, metadata={"help": "Weight of the object's pixels (and its margin) in the VAE's loss."}
    )
    object_margin: int = field(
        default=0,
        metadata={
            "help": "Pixels around the object, and frames either side, that weigh as the object in the VAE's loss."
        },
    )
    vae_l1_weight: float = field(
        default=0.0, metadata={"help": "Weight of an L1 term beside the VAE's squared error."}
    )
    vae_off_palette: bool = field(
        default=False,
        metadata={
            "help": "Train the VAE also on every clip redrawn in an off-palette color (no caption names it), so it "
            "learns to draw any shape in any color rather than the train captions' color–shape pairs."
        },
    )
    vae_decode_mean: bool = field(
        default=False,
        metadata={
            "help": "Decode the posterior's mean in VAE training (as the transformer's latents are), "
            "not a sample of it."
        },
    )
    kl_weight: float = field(default=1e-4, metadata={"help": "Weight of the VAE's KL term."})
    # transformer and text encoder
    layers: int = field(default=4, metadata={"help": "Transformer blocks."})
    heads: int = field(default=4, metadata={"help": "Attention heads."})
    head_dim: int = field(
        default=32, metadata={"help": "Width of each head (heads x head_dim: a multiple of 16)."}
    )
    patch_size: int = field(default=4, metadata={"help": "Latent patch size of the transformer."})
    text_layers: int = field(
        default=2,
        metadata={
            "help": "T5 encoder blocks, trained with the transformer (0: each word's embedding alone, no context)."
        },
    )
    text_dim: int = field(default=64, metadata={"help": "T5 width."})
    steps: int = field(default=5200, metadata={"help": "Transformer optimizer steps."})
    batch_size: int = field(default=32, metadata={"help": "Clips per transformer step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Transformer + T5 AdamW learning rate."})
    empty_prompt_rate: float = field(default=0.1, metadata={"help": "Share of empty prompts (for guidance)."})
    word_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Share of training captions that lose their color word or their shape word (each half the "
            "time), so each word alone must carry its attribute and colors stop implying the shapes they came with."
        },
    )
    lr_schedule: str = field(
        default="constant",
        metadata={"help": "Transformer learning rate over steps: constant | cosine (to 0)."},
    )
    lr_decay_start: int = field(
        default=0,
        metadata={
            "help": "With lr_schedule=cosine, the step the decay starts from (constant before it), so a run "
            "trained at a constant rate can be continued into its decay and still equal one run of the recipe."
        },
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "Decay of an exponential moving average of the transformer and T5 weights, which the pipeline gets (0: off)."
        },
    )
    snr_shift_scale: float = field(
        default=3.0,
        metadata={
            "help": "The scheduler's SNR shift: CogVideoX-2b's 3.0 (noisier, for large frames) or 5b's 1.0."
        },
    )
    latent_object_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the latents under the object (and one latent pixel around it) in the v-loss."
        },
    )
    checkpoint_steps: int = field(
        default=500, metadata={"help": "Checkpoint every this many steps of a stage."}
    )
    log_steps: int = field(default=10, metadata={"help": "Log the loss every this many steps."})
    torch_num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (default: torch's)."}
    )

    def __post_init__(self):
        chunk = 2 * self.time_compression
        if self.num_frames < 1 or (self.num_frames - 1) % chunk:
            raise ValueError(
                f"num_frames={self.num_frames}: CogVideoX's VAE needs (num_frames - 1) % {chunk} == 0"
            )
        spatial = 2 ** (len(self.vae_channels) - 1) * self.patch_size
        if self.height % spatial or self.width % spatial:
            raise ValueError(f"height and width must be multiples of {spatial} (VAE factor x patch size)")
        if (self.heads * self.head_dim) % 16:
            raise ValueError("heads x head_dim must be a multiple of 16 (CogVideoX's 3D sin-cos positions)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.lr_decay_start < self.steps:
            raise ValueError(f"lr_decay_start must be in [0, steps={self.steps}), got {self.lr_decay_start}")
        if self.lr_decay_start and self.lr_schedule != "cosine":
            raise ValueError(
                f"lr_decay_start={self.lr_decay_start} needs lr_schedule=cosine (a constant rate never decays)"
            )
        if self.text_layers < 0:
            raise ValueError(
                f"text_layers must be >= 0 (0: no T5 blocks, each word's embedding alone), got {self.text_layers}"
            )
        if not 0 <= self.word_dropout <= 1:
            raise ValueError(f"word_dropout must be in [0, 1], got {self.word_dropout}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.object_margin < 0 or self.vae_l1_weight < 0:
            raise ValueError(
                f"object_margin and vae_l1_weight must be >= 0, got {self.object_margin} and {self.vae_l1_weight}"
            )
