"""TRL's RewardTrainer really trains a tiny CleveReward on a tiny synthetic corpus (reward/trainer.py, reward/train.py)."""

import json
import math

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

from reward.dimensions import build_question
from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.pairs import load_corpus, save_corpus
from reward.synthetic import build_synthetic_corpus
from reward.text import build_word_tokenizer
from reward.train import main, make_parser, run
from reward.trainer import (
    TIE_STATE_FILE,
    CleveRewardTrainingConfig,
    VideoPreferenceCollator,
    VideoRewardTrainer,
)
from reward.video import read_video

PAIRS_PER_DIMENSION = 8  # -> 4 train pairs per dimension, 16 in all
FRAMES, SIZE = 4, 32
TINY_MODEL_ARGS = [
    "--conv_channels", "8", "16",
    "--num_frames", str(FRAMES),
    "--frame_size", str(SIZE), str(SIZE),
    "--word_embedding_dim", "16",
    "--text_hidden_size", "32",
    "--projection_dim", "16",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return build_synthetic_corpus(out, PAIRS_PER_DIMENSION, seed=0, num_workers=1)


@pytest.fixture(scope="module")
def corpus(corpus_dir):
    return load_corpus(corpus_dir)


def tiny_model(corpus) -> tuple[CleveRewardModel, object]:
    train = corpus.pairs["train"]
    tokenizer = build_word_tokenizer(train["prompt"])
    config = CleveRewardConfig(
        vocab_size=len(tokenizer),
        conv_channels=[8, 16],
        word_embedding_dim=16,
        text_hidden_size=32,
        projection_dim=16,
        num_frames=FRAMES,
        frame_size=[SIZE, SIZE],
        dimensions=sorted(set(train["dimension"])),
    )
    torch.manual_seed(0)
    return CleveRewardModel(config), tokenizer


def training_args(tmp_path, **overrides) -> CleveRewardTrainingConfig:
    fields = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "learning_rate": 1e-2,
        "max_steps": 6,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "tie_loss": False,
        "seed": 0,
        "use_cpu": True,
    }
    return CleveRewardTrainingConfig(**{**fields, **overrides})


def test_collator_builds_a_chosen_first_batch(corpus):
    model, tokenizer = tiny_model(corpus)
    rows = [corpus.pairs["train"][i] for i in range(3)]
    batch = VideoPreferenceCollator(model, tokenizer, corpus.video_root)(rows)
    chosen = torch.stack([read_video(corpus.video_path(r["chosen_video"]), FRAMES, size=SIZE) for r in rows])
    rejected = torch.stack(
        [read_video(corpus.video_path(r["rejected_video"]), FRAMES, size=SIZE) for r in rows]
    )
    expected = model.preprocess_videos(torch.cat([chosen, rejected]).float() / 255)
    torch.testing.assert_close(batch["pixel_values"], expected)
    assert batch["margin"].tolist() == pytest.approx([r["margin"] for r in rows])
    assert batch["text_index"][:3].tolist() == batch["text_index"][3:].tolist()  # a pair shares its question
    assert batch["num_skipped"].item() == 0


def test_reward_trainer_changes_every_parameter_lowers_the_loss_and_round_trips(corpus, tmp_path):
    model, tokenizer = tiny_model(corpus)
    train = corpus.pairs["train"]
    trainer = VideoRewardTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=12, per_device_eval_batch_size=5),  # 16 pairs: 5 + 5 + 5 + 1
        train_dataset=train,
        eval_dataset=train,
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    evaluation = trainer.evaluate()
    # Accuracy counts pairs (correct / pairs), not a mean of per-batch accuracies (the short last
    # batch would weigh like a full one).
    assert evaluation["eval_pairs"] == len(train)
    correct = evaluation["eval_accuracy"] * len(train)
    assert correct == pytest.approx(round(correct), abs=1e-6)
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < evaluation["eval_loss"]
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {
        "accuracy",
        "eval_accuracy",
        "eval_accuracy_text_alignment",
        "eval_margin_visual_quality",
    } <= logged

    trainer.save_model(str(tmp_path / "saved"))
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "saved")
    videos = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    questions = [[build_question("visual_quality", "a red circle moving left")]] * 2
    with torch.no_grad():
        expected = model.eval().score_questions(videos, questions, tokenizer)
        torch.testing.assert_close(loaded.score_questions(videos, questions, loaded_tokenizer), expected)


def test_tie_pairs_are_trained_with_a_learned_threshold(corpus, tmp_path):
    model, tokenizer = tiny_model(corpus)
    # Half the pairs become ties (margin 0): their loss pulls the two rewards together.
    train = corpus.pairs["train"].map(
        lambda row, i: {"tie": i % 2 == 0, "margin": 0.0 if i % 2 == 0 else row["margin"]}, with_indices=True
    )
    args = training_args(tmp_path, tie_loss=True, tie_nu_init=0.5)
    trainer = VideoRewardTrainer(
        model=model, args=args, train_dataset=train, processing_class=tokenizer, video_root=corpus.video_root
    )
    assert len(trainer.train_dataset) == len(train)  # ties are kept
    trainer.train()
    assert trainer.tie_nu.item() != pytest.approx(0.5)
    trainer.save_model(str(tmp_path / "saved"))
    saved = json.loads((tmp_path / "saved" / TIE_STATE_FILE).read_text())
    assert saved["nu"] == pytest.approx(trainer.tie_nu.item())


def test_without_tie_loss_ties_are_dropped_and_counted(corpus, tmp_path, caplog):
    model, tokenizer = tiny_model(corpus)
    train = corpus.pairs["train"].map(lambda row, i: {"tie": i < 3}, with_indices=True)
    trainer = VideoRewardTrainer(
        model=model,
        args=training_args(tmp_path),
        train_dataset=train,
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )
    assert len(trainer.train_dataset) == len(train) - 3
    assert "dropping 3 tie pairs" in caplog.text


def test_regression_objective_fits_scores_and_drops_unscored_pairs(corpus, tmp_path, caplog):
    model, tokenizer = tiny_model(corpus)
    # Even pairs carry scores (chosen 1, rejected 0); odd ones are votes without scores.
    train = corpus.pairs["train"].map(
        lambda row, i: {"chosen_score": 1.0 if i % 2 == 0 else float("nan"),
                        "rejected_score": 0.0 if i % 2 == 0 else float("nan")},
        with_indices=True,
    )  # fmt: skip
    args = training_args(tmp_path, objective="regression", regression_scale=4.0, max_steps=12)
    trainer = VideoRewardTrainer(
        model=model, args=args, train_dataset=train, processing_class=tokenizer, video_root=corpus.video_root
    )
    assert len(trainer.train_dataset) == (len(train) + 1) // 2
    assert "regression: training on the" in caplog.text
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]
    # evaluation keeps the unscored pairs, which are not fitted, also with TRL's centering term
    centred = VideoRewardTrainer(
        model=model,
        args=training_args(tmp_path, objective="regression", center_rewards_coefficient=0.01),
        train_dataset=train,
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )
    assert math.isfinite(centred.evaluate(train)["eval_loss"])
    with pytest.raises(ValueError, match="objective must be one of"):
        training_args(tmp_path, objective="listwise")


def test_unreadable_videos_are_skipped_counted_and_named(corpus, tmp_path):
    model, tokenizer = tiny_model(corpus)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all")
    broken = {0: "does/not/exist.mp4", 1: str(corrupt)}
    train = corpus.pairs["train"].map(
        lambda row, i: {"chosen_video": broken.get(i, row["chosen_video"])}, with_indices=True
    )
    trainer = VideoRewardTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=2),
        train_dataset=train,
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )
    trainer.train()  # no crash
    skipped = trainer.data_collator.skipped
    assert {p.split("/")[-1] for p in skipped} == {"exist.mp4", "corrupt.mp4"}
    assert all(skipped.values())  # each with its reason
    assert max(entry.get("skipped_pairs", 0) for entry in trainer.state.log_history) == 2


def test_train_entry_point_through_the_cli_saves_resumes_and_reports(corpus_dir, tmp_path, capsys):
    from align.cli import main as cli

    out = tmp_path / "run"
    argv = [
        "train",
        "--data_dir", str(corpus_dir),
        "--output_dir", str(out),
        "--max_steps", "2",
        "--per_device_train_batch_size", "8",
        "--save_strategy", "steps",
        "--save_steps", "2",
        "--report_to", "none",
        "--use_cpu", "true",
        *TINY_MODEL_ARGS,
    ]  # fmt: skip
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert "validation: pairwise accuracy" in printed and "text_alignment" in printed
    for name in ("model.safetensors", "config.json", "tokenizer.json", "skipped_videos.json"):
        assert (out / name).is_file(), name
    assert AutoTokenizer.from_pretrained(out).pad_token == "[PAD]"
    assert (out / "checkpoint-2").is_dir()
    # Resume from the last checkpoint and go on to step 4.
    assert cli([*argv[:6], "4", *argv[7:], "--resume_from_checkpoint", "last"]) == 0
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_a_config_trains_the_same_model_every_run(corpus_dir, tmp_path):
    def weights(name: str, seed: int) -> dict:
        out = tmp_path / name
        argv = [
            "--data_dir", str(corpus_dir),
            "--output_dir", str(out),
            "--max_steps", "2",
            "--per_device_train_batch_size", "8",
            "--save_strategy", "no",
            "--report_to", "none",
            "--use_cpu", "true",
            "--seed", str(seed),
            *TINY_MODEL_ARGS,
        ]  # fmt: skip
        assert main(argv) == 0
        return load_file(out / "model.safetensors")

    first, again, other = weights("first", 0), weights("again", 0), weights("other", 1)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)  # the towers' initialisation is seeded
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_final_evaluation_drops_ties_like_training_when_the_tie_loss_is_off(corpus, tmp_path):
    pairs = datasets.DatasetDict(
        {
            split: ds.map(
                lambda row, i: {"tie": i < 3, "margin": 0.0 if i < 3 else row["margin"]}, with_indices=True
            )
            for split, ds in corpus.pairs.items()
        }
    )
    data = save_corpus(tmp_path / "ties", pairs, corpus.video_root)
    argv = [
        "--data_dir", str(data),
        "--output_dir", str(tmp_path / "out"),
        "--max_steps", "1",
        "--save_strategy", "no",
        "--report_to", "none",
        "--use_cpu", "true",
        "--tie_loss", "false",
        "--final_eval_splits", "train",
        *TINY_MODEL_ARGS,
    ]  # fmt: skip
    _, results = run(*make_parser().parse_args_and_config(args=argv))
    assert results["train"]["eval_pairs"] == len(pairs["train"]) - 3
