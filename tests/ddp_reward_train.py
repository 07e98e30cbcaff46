"""Launched by tests/test_ddp.py: `torchrun --nproc_per_node 2 tests/ddp_reward_train.py CORPUS OUT`.

Trains a tiny CleveReward for a few steps over gloo through `reward.train.run` (what
`reward.train.main` runs), evaluates it on the 16 training pairs (8 per rank) and prints each
rank's metrics as one JSON line, `METRICS <rank> {...}`, for the test to compare.
"""

import json
import sys

import torch.distributed as dist

from reward.train import make_parser, run

TINY_MODEL_ARGS = [
    "--conv_channels", "8", "16",
    "--num_frames", "4",
    "--frame_size", "32", "32",
    "--word_embedding_dim", "16",
    "--text_hidden_size", "32",
    "--projection_dim", "16",
]  # fmt: skip


def train(corpus_dir: str, out: str) -> None:
    argv = [
        "--data_dir", corpus_dir,
        "--output_dir", out,
        "--max_steps", "3",
        "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4",
        "--learning_rate", "0.01",
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--report_to", "none",
        "--use_cpu", "true",
        "--torch_num_threads", "1",
        "--final_eval_splits", "train",  # 16 pairs: 8 per rank
        *TINY_MODEL_ARGS,
    ]  # fmt: skip
    trainer, results = run(*make_parser().parse_args_and_config(args=argv))
    metrics = {**results["train"], "world_size": dist.get_world_size()}
    print(f"METRICS {dist.get_rank()} {json.dumps(metrics)}", flush=True)
    trainer.accelerator.wait_for_everyone()  # as reward.train.main: meet before the group's teardown
    trainer.end()


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2])
