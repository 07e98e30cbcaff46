"""Alignment checkpoints: complete or absent, holding the LoRA weights and training state only.

- `save_checkpoint` writes `accelerator.save_state` into a temporary folder that the main
  process renames to `checkpoint-<step>`: a kill leaves the previous checkpoint, never half a new one.
- The save / load hooks keep only trainable parameters: the frozen base transformer is rebuilt
  from the generator at resume (about 11 GB less per checkpoint for CogVideoX-5b in bf16).
  DeepSpeed and FSDP save through their own plugins and bypass the hooks.
- `truncate_log` drops the log records written after the checkpoint a run resumes from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from align.config import AlignConfig
from reward.files import atomic_write, read_jsonl

__all__ = [
    "CHECKPOINT_PREFIX",
    "resolve_checkpoint",
    "resume_state",
    "register_lora_only_hooks",
    "save_checkpoint",
    "truncate_log",
]

CHECKPOINT_PREFIX = "checkpoint-"


def resolve_checkpoint(config: AlignConfig) -> Path | None:
    """The checkpoint folder a run resumes from: None (fresh start), the given folder, or the latest in output_dir."""
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


def resume_state(accelerator, config: AlignConfig) -> int:
    """Load the checkpoint `config` resumes from into `accelerator`; the step it was taken at (0: fresh)."""
    checkpoint = resolve_checkpoint(config)
    if checkpoint is None:
        return 0
    accelerator.load_state(str(checkpoint))
    return int(checkpoint.name.removeprefix(CHECKPOINT_PREFIX))


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


def save_checkpoint(accelerator, output_dir: Path, step: int) -> None:
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


def register_lora_only_hooks(accelerator) -> None:
    """Make `accelerator.save_state` / `load_state` write and read only the trained (LoRA) weights."""
    accelerator.register_save_state_pre_hook(_keep_trainable_weights)
    accelerator.register_load_state_pre_hook(_load_trainable_weights)


def truncate_log(path: Path, step: int) -> None:
    """Keep the log records up to `step` (a resumed run rewrites what came after its checkpoint)."""
    if not path.exists():
        return
    kept = [record for record in read_jsonl(path) if record.get("step", 0) <= step]
    with atomic_write(path) as f:
        f.write("".join(json.dumps(record) + "\n" for record in kept))
