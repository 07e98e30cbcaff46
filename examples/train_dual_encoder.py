"""Train the CleveReward dual encoder: at real size, CLIP ViT-B/16 (LoRA) + a frozen T5 on VideoCross.

    # real size, on GPUs (a VideoCross corpus from examples/build_videocross.py; the hub or local backbones)
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml examples/train_dual_encoder.py \
        --data data/videocross --out runs/reward-clip-t5
    # any recipe field can follow, e.g. --video_tower path/to/clip --per_device_train_batch_size 8
    # tiny: the built-in towers on a small synthetic world, a few steps on a CPU
    python examples/train_dual_encoder.py --tiny --out runs/example-dual-encoder

This is `reward.train` with a recipe (`configs/reward/clip-t5-videocross.yaml`, or the synthetic
CPU default for --tiny); the trained folder scores with `reward.load_scorer(out)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reward import train

RECIPE = "configs/reward/clip-t5-videocross.yaml"
TINY_RECIPE = "configs/reward/synthetic.yaml"
# A small world and small towers: seconds on a CPU, enough to see the loss fall.
TINY_OVERRIDES = [
    "--synthetic_pairs_per_dimension", "12", "--synthetic_alignment_factor", "1",
    "--conv_channels", "8", "16", "--shape_channels", "8", "--word_embedding_dim", "16",
    "--text_hidden_size", "32", "--projection_dim", "32", "--num_frames", "4",
    "--max_steps", "6", "--per_device_train_batch_size", "8", "--logging_steps", "2",
    "--save_strategy", "no", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, help="where the trained model goes")
    parser.add_argument("--data", default="data/videocross", help="the pair corpus (ignored with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="built-in towers on a small synthetic world")
    args, recipe_fields = parser.parse_known_args(argv)
    if args.tiny:
        data = str(Path(args.out) / "data")
        run = ["--config", TINY_RECIPE, "--data_dir", data, "--synthetic", "true", *TINY_OVERRIDES]
    else:
        run = ["--config", RECIPE, "--data_dir", args.data]
    return train.main([*run, "--output_dir", args.out, *recipe_fields])


if __name__ == "__main__":
    raise SystemExit(main())
