"""Every script under examples/ runs as documented in its tiny mode and writes what it promises."""

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_every_example_is_tested_here():
    tested = {"build_videocross", "train_dual_encoder", "train_qwen2vl_reward", "score_videos", "best_of_n",
              "dpo_cogvideox"}  # fmt: skip
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_build_videocross_tiny(tmp_path):
    from reward.pairs import load_corpus

    assert run_example("build_videocross", ["--tiny", "--out", str(tmp_path)]) == 0
    corpus = load_corpus(tmp_path)
    sources = {s for split in corpus.pairs.values() for s in split["source"]}
    assert sources == {"t2vqa", "videogen_rewardbench"}
    assert json.loads((tmp_path / "report.json").read_text())["skipped_total"] == 0


@pytest.mark.parametrize("name, model_dir", [("train_dual_encoder", "."), ("train_qwen2vl_reward", "model")])
def test_reward_training_examples_tiny(name, model_dir, tmp_path):
    from reward.scoring import load_scorer

    assert run_example(name, ["--tiny", "--out", str(tmp_path)]) == 0
    assert load_scorer(tmp_path / model_dir, device="cpu") is not None


def test_score_videos_tiny(tmp_path, capsys):
    assert run_example("score_videos", ["--tiny", "--out", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {Path(line["video"]).name for line in lines} == {"clean.mp4", "blur.mp4", "freeze.mp4"}
    assert all("mean" in line and "text_alignment" in line for line in lines)


def test_best_of_n_tiny(tmp_path):
    from align.manifest import load_manifest

    assert run_example("best_of_n", ["--tiny", "--out", str(tmp_path)]) == 0
    manifest = load_manifest(tmp_path)
    assert [len(p["candidates"]) for p in manifest["prompts"]] == [4, 4]
    assert (tmp_path / "gallery.html").is_file()


def test_dpo_cogvideox_tiny(tmp_path):
    assert run_example("dpo_cogvideox", ["--tiny", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "train" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert len((tmp_path / "train" / "log.jsonl").read_text().splitlines()) == 4
