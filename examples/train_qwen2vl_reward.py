"""Train a Qwen2-VL reward model (a score head on the VLM, LoRA on its language model).

    # real size, one GPU: Qwen2-VL-2B-Instruct from the hub (or a local copy) on a VideoCross corpus
    accelerate launch --config_file configs/accelerate/single_gpu.yaml examples/train_qwen2vl_reward.py \
        --data data/videocross --out runs/reward-qwen2vl-2b
    # Qwen2-VL-7B in 4-bit (QLoRA): add --recipe configs/reward/qwen2vl-7b-qlora.yaml
    # tiny: a random Qwen2-VL with the real architecture's code path, written to a folder, on a CPU
    python examples/train_qwen2vl_reward.py --tiny --out runs/example-qwen2vl

This is `reward.train` with `vlm_name_or_path` set by the recipe; the output folder holds the
model with LoRA merged (`reward.load_scorer(out)` scores with it) and the adapter under adapter/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reward import train

RECIPE = "configs/reward/qwen2vl-2b-lora.yaml"
# The tiny VLM's vision patches are 8 px and merge 2: 32 x 32 frames are multiples of 16.
TINY_OVERRIDES = [
    "--num_frames", "4", "--frame_size", "32", "32", "--lora_r", "4", "--lora_alpha", "8",
    "--learning_rate", "3e-4", "--max_steps", "4", "--per_device_train_batch_size", "4",
    "--tie_loss", "false", "--bf16", "false", "--vlm_dtype", "float32", "--gradient_checkpointing", "false",
    "--attn_implementation", "eager", "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no",
    "--dataloader_num_workers", "0", "--final_eval_splits", "validation",
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, help="where the trained reward model goes")
    parser.add_argument(
        "--data", default="data/videocross", help="the pair corpus (a small synthetic one with --tiny)"
    )
    parser.add_argument("--recipe", default=RECIPE, help="the reward recipe (YAML)")
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random Qwen2-VL and a small synthetic world"
    )
    args, recipe_fields = parser.parse_known_args(argv)
    run = ["--config", args.recipe, "--data_dir", args.data]
    if args.tiny:
        from reward.vlm import build_tiny_qwen2_vl

        backbone = build_tiny_qwen2_vl(Path(args.out) / "tiny-qwen2-vl")
        run = ["--config", args.recipe, "--data_dir", str(Path(args.out) / "data"), "--synthetic", "true",
               "--synthetic_pairs_per_dimension", "12", "--vlm_name_or_path", str(backbone), *TINY_OVERRIDES]  # fmt: skip
    return train.main([*run, "--output_dir", str(Path(args.out) / "model"), *recipe_fields])


if __name__ == "__main__":
    raise SystemExit(main())
