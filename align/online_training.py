"""What the online trainers (GRPO, reward backpropagation) share: the run's set-up and its sample rows.

Both sample from the policy as they train, so a step's data is a function of (seed, step) alone:
`online_rows` gives the global list of (prompt, seed, group) rows of a step, each process takes an
equal contiguous slice, and a resumed run regenerates exactly the rows it would have seen.
`OnlineRun` is the accelerate set-up both need: LoRA-only checkpoints, `--resume`, the log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from align.checkpoint import (
    register_lora_only_hooks,
    resume_state,
    save_checkpoint,
    truncate_log,
)
from align.config import AlignConfig
from reward.files import write_json

__all__ = ["online_rows", "OnlineRun"]


def online_rows(
    config: AlignConfig, prompts: list[str], step: int, group_size: int = 1
) -> tuple[list[str], list[int], list[int]]:
    """The global sample list of one step: (prompts, seeds, group ids), `group_size` rows per prompt.

    Prompts cycle through `prompts` in order, `online_prompts_per_step` per step; row i's seed is
    drawn from numpy's SeedSequence((seed, step, i)); rows of one prompt share a group id.
    """
    per_step = config.online_prompts_per_step
    chosen = [(step * per_step + j) % len(prompts) for j in range(per_step)]
    rows = [(p, j) for j, p in enumerate(chosen) for _ in range(group_size)]
    seeds = [
        int(np.random.SeedSequence([config.seed, step, i]).generate_state(1)[0]) for i in range(len(rows))
    ]
    return [prompts[p] for p, _ in rows], seeds, [j for _, j in rows]


@dataclass
class OnlineRun:
    """An online trainer's accelerate state: the wrapped transformer, its optimizer, where to resume.

    `mine` is this process's slice of a step's `total` rows.
    """

    accelerator: object
    pipe: object
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    start: int
    output_dir: Path
    mine: slice

    @classmethod
    def setup(cls, config: AlignConfig, pipe, total: int, per_update: int) -> OnlineRun:
        """Accelerator, pipeline (built from `config` when None), LoRA optimizer, resumed state.

        `total` rows per step must split evenly into processes and micro-batches of `per_update`.
        """
        from accelerate.utils import set_seed

        from align.train import LOG_NAME, _accelerator, _optimizer, build_pipeline

        accelerator = _accelerator(config)
        set_seed(config.seed)
        if total % accelerator.num_processes or (total // accelerator.num_processes) % per_update:
            raise ValueError(
                f"{total} samples per step must split evenly into {accelerator.num_processes} processes x "
                f"micro-batches of train_batch_size={per_update} (online_prompts_per_step x group size)"
            )
        output_dir = Path(config.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        if pipe is None:
            pipe = build_pipeline(config, accelerator.device, accelerator.mixed_precision)
        if config.gradient_checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        params = [p for p in pipe.transformer.parameters() if p.requires_grad]
        wrapped, optimizer = accelerator.prepare(pipe.transformer, _optimizer(params, config))
        register_lora_only_hooks(accelerator)
        start = resume_state(accelerator, config)
        if accelerator.is_main_process:
            truncate_log(output_dir / LOG_NAME, start)
            write_json(output_dir / "train_config.json", asdict(config))
        accelerator.init_trackers("clevereward-align", config={k: str(v) for k, v in asdict(config).items()})
        share = total // accelerator.num_processes
        mine = slice(accelerator.process_index * share, (accelerator.process_index + 1) * share)
        return cls(accelerator, pipe, wrapped, optimizer, params, start, output_dir, mine)

    def average_gradients(self) -> None:
        """Average the LoRA gradients over processes (for losses computed outside the DDP wrapper)."""
        if self.accelerator.num_processes > 1:
            for param in self.params:
                if param.grad is not None:
                    param.grad = self.accelerator.reduce(param.grad, reduction="mean")

    def end_step(self, config: AlignConfig, record: dict) -> None:
        """Log the step's record (every `logging_steps` and at the end) and checkpoint when due."""
        from align.train import LOG_NAME, log_step

        done = record["step"]
        if done % config.logging_steps == 0 or done == config.steps:
            log_step(self.accelerator, self.output_dir / LOG_NAME, record)
        if config.checkpointing_steps and done % config.checkpointing_steps == 0:
            save_checkpoint(self.accelerator, self.output_dir, done)

    def finish(self, summary: dict) -> dict:
        """Save the LoRA (`lora/`) and `summary.json` on the main process; the transformer left in eval mode."""
        from align import cogvideox
        from align.train import LORA_DIR

        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            cogvideox.save_lora(self.accelerator.unwrap_model(self.wrapped), self.output_dir / LORA_DIR)
            write_json(self.output_dir / "summary.json", summary)
        self.accelerator.end_training()
        self.wrapped.eval()
        return summary
