"""Training steps/s with frozen towers, with the embedding cache vs without it, in one run.

    python benchmarks/bench_embedding_cache.py [--pairs-per-dimension 24] [--epochs 3]

Towers: a small CLIP vision encoder (run on every frame) and a small BERT text encoder, built
from configs with fixed seeds (no download), both frozen, so only the projections and the
temperature train. Both runs train the same model on the same synthetic pairs for the same
epochs. Without the cache every step decodes its videos and runs both towers; with it the first
epoch encodes each unique video and question once and later epochs read features. The table
reports whole-run and warm (after the first epoch) steps/s and their ratio (goal: >= 10x warm).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, CLIPVisionConfig, TrainerCallback

from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.pairs import load_corpus
from reward.synthetic import build_synthetic_corpus
from reward.text import build_word_tokenizer
from reward.trainer import CleveRewardTrainingConfig, VideoRewardTrainer

FRAMES, SIZE = 8, 64
# A frozen backbone of a few million parameters: big enough that encoding dominates a step.
TOWER = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 512}
BATCH = 16


class EpochTimer(TrainerCallback):
    """Wall time at each epoch end, to separate the cold first epoch from the warm ones."""

    def __init__(self):
        self.marks: list[tuple[int, float]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks.append((0, time.perf_counter()))

    def on_epoch_end(self, args, state, control, **kwargs):
        self.marks.append((state.global_step, time.perf_counter()))


def build_model(vocab_size: int) -> CleveRewardModel:
    config = CleveRewardConfig(
        video_tower="bench-clip-vision",
        video_tower_config=CLIPVisionConfig(**TOWER, image_size=SIZE, patch_size=8).to_dict(),
        text_tower="bench-bert",
        text_tower_config=BertConfig(**TOWER, vocab_size=vocab_size).to_dict(),
        video_tower_mode="frozen",
        text_tower_mode="frozen",
        num_frames=FRAMES,
        frame_size=[SIZE, SIZE],
    )
    torch.manual_seed(0)
    return CleveRewardModel(config)


def train(corpus, tokenizer, out: Path, epochs: int, cache_dir: str | None) -> EpochTimer:
    args = CleveRewardTrainingConfig(
        output_dir=str(out),
        per_device_train_batch_size=BATCH,
        num_train_epochs=epochs,
        learning_rate=1e-3,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        tie_loss=False,
        embedding_cache_dir=cache_dir,
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    timer = EpochTimer()
    trainer = VideoRewardTrainer(
        model=build_model(len(tokenizer)),
        args=args,
        train_dataset=corpus.pairs["train"],
        processing_class=tokenizer,
        video_root=corpus.video_root,
        callbacks=[timer],
    )
    trainer.train()
    return timer


def rates(timer: EpochTimer) -> tuple[float, float]:
    (_, t0), (step1, t1), (step_n, t_n) = timer.marks[0], timer.marks[1], timer.marks[-1]
    return step_n / (t_n - t0), (step_n - step1) / (t_n - t1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs-per-dimension", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = load_corpus(build_synthetic_corpus(tmp / "corpus", args.pairs_per_dimension, seed=0))
        tokenizer = build_word_tokenizer(corpus.pairs["train"]["prompt"])
        plain = rates(train(corpus, tokenizer, tmp / "plain", args.epochs, cache_dir=None))
        cached = rates(train(corpus, tokenizer, tmp / "cached", args.epochs, cache_dir=str(tmp / "cache")))
    pairs = len(corpus.pairs["train"])
    print(f"frozen CLIP-vision + BERT towers, {pairs} train pairs, batch {BATCH}, {args.epochs} epochs")
    print(f"{'run':<10}{'steps/s (all)':>15}{'steps/s (warm)':>16}")
    print(f"{'no cache':<10}{plain[0]:>15.3f}{plain[1]:>16.3f}")
    print(f"{'cache':<10}{cached[0]:>15.3f}{cached[1]:>16.3f}")
    print(f"{'ratio':<10}{cached[0] / plain[0]:>14.1f}x{cached[1] / plain[1]:>15.1f}x")


if __name__ == "__main__":
    main()
