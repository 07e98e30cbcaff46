"""Launched by tests/test_ddp.py: `torchrun --nproc_per_node 2 tests/ddp_reward_train.py CORPUS OUT METRICS_DIR`.

Trains a tiny CleveReward for a few steps over gloo through `reward.train.run` (what
`reward.train.main` runs), evaluates it on the 16 training pairs (8 per rank) and the 12 test pairs
(batches of 4: rank 1's last batch repeats 4 pairs) and writes each rank's metrics to
`METRICS_DIR/metrics-<rank>.json` for the test to compare (a file per rank: two processes printing
to one pipe can interleave their lines).
"""

import sys
from pathlib import Path

import torch.distributed as dist

from reward.files import write_json
from reward.train import make_parser, run

TINY_MODEL_ARGS = [
    "--conv_channels", "8", "16",
    "--num_frames", "4",
    "--frame_size", "32", "32",
    "--word_embedding_dim", "16",
    "--text_hidden_size", "32",
    "--projection_dim", "16",
]  # fmt: skip


def train(corpus_dir: str, out: str, metrics_dir: str) -> None:
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
        "--final_eval_splits", "train", "test",
        *TINY_MODEL_ARGS,
    ]  # fmt: skip
    trainer, results = run(*make_parser().parse_args_and_config(args=argv))
    metrics = {**results["train"], "test": results["test"], "world_size": dist.get_world_size()}
    write_json(Path(metrics_dir) / f"metrics-{dist.get_rank()}.json", metrics)
    trainer.accelerator.wait_for_everyone()  # as reward.train.main: meet before the group's teardown
    trainer.end()


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2], sys.argv[3])
