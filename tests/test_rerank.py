"""Best-of-N reranking on a real tiny CogVideoXPipeline: seeds, manifest, resume, crash safety, the
selection property, `clevereward rerank` (bad inputs fail before generation), --videos, and DPO pairs
from the samples.

Every run samples 32x32, 9-frame videos with 2 denoising steps.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from align.cli import main as cli
from align.cogvideox import generate, tiny_pipeline
from align.manifest import GAIN_PLOT_NAME, GALLERY_NAME, load_manifest, prompt_gain, rank_candidates
from align.preference import SAMPLE_PAIR_FEATURES, pairs_from_manifest, save_sample_pairs
from align.rerank import candidate_seed, rerank, rerank_videos
from align.rewards import Reward, color_match, motion
from reward.pairs import PAIR_COLUMNS, load_corpus
from reward.synthetic import render_video
from reward.video import read_video, write_video

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right"]
STEPS = 2
GUIDANCE = 6.0
N = 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def run(pipe, prompts, out, rewards=(color_match, motion), **kwargs):
    options = {
        "n": N,
        "top_k": 1,
        "seed": 0,
        "batch_size": N,
        "num_inference_steps": STEPS,
        "guidance_scale": GUIDANCE,
    }
    return rerank(pipe, prompts, list(rewards), out, generator_name="tiny", **{**options, **kwargs})


@pytest.fixture(scope="module")
def samples(pipe, tmp_path_factory):
    """A finished run: 2 prompts x 4 candidates, ranked by color_match, motion recorded too."""
    out = tmp_path_factory.mktemp("samples")
    return out, run(pipe, PROMPTS[:2], out, batch_size=3)  # 3 does not divide 4: batching must not matter


def test_candidate_seeds_are_deterministic_and_distinct():
    seeds = {candidate_seed(7, p, c) for p in range(20) for c in range(16)}
    assert len(seeds) == 20 * 16
    assert candidate_seed(7, 3, 5) == candidate_seed(7, 3, 5) != candidate_seed(8, 3, 5)
    assert all(0 <= s < 2**32 for s in seeds)


def test_manifest_lists_every_candidate_with_existing_files(samples):
    out, manifest = samples
    assert load_manifest(out) == manifest
    assert [e["prompt"] for e in manifest["prompts"]] == PROMPTS[:2]
    assert [r["name"] for r in manifest["rewards"]] == ["color_match", "motion"]
    for entry in manifest["prompts"]:
        assert [c["candidate"] for c in entry["candidates"]] == list(range(N))
        assert sorted(c["rank"] for c in entry["candidates"]) == list(range(N))
        assert sum(c["chosen"] for c in entry["candidates"]) == 1
        for cand in entry["candidates"]:
            assert cand["seed"] == candidate_seed(0, entry["index"], cand["candidate"])
            assert set(cand["scores"]) == {"color_match", "motion"}
            assert read_video(out / cand["video"], 9).shape == (9, 3, 64, 64)  # 32 px, pixels repeated
            assert load_file(out / cand["latents"])["latents"].shape == (3, 4, 4, 4)  # [F_lat, C_lat, h, w]
        best = min(entry["candidates"], key=lambda c: c["rank"])
        assert best["chosen"] and best["scores"]["color_match"] == max(
            c["scores"]["color_match"] for c in entry["candidates"]
        )


def test_seeds_make_candidates_reproducible(pipe, samples):
    """A candidate regenerated alone from its manifest seed has the saved latents and scores."""
    out, manifest = samples
    entry = manifest["prompts"][1]
    cand = entry["candidates"][3]  # the last of a batch of 3 + a batch of 1
    again = generate(pipe, [entry["prompt"]], [cand["seed"]], STEPS, GUIDANCE)
    torch.testing.assert_close(again.latents[0], load_file(out / cand["latents"])["latents"])
    assert color_match(again.videos, [entry["prompt"]]).item() == pytest.approx(
        cand["scores"]["color_match"], abs=1e-5
    )


def mtimes(out, manifest):
    return {
        c["video"]: (out / c["video"]).stat().st_mtime_ns
        for e in manifest["prompts"]
        for c in e["candidates"]
    }


def test_resume_skips_finished_prompts(pipe, tmp_path):
    first = run(pipe, PROMPTS[:1], tmp_path, n=2)
    before = mtimes(tmp_path, first)
    second = run(pipe, PROMPTS[:2], tmp_path, n=2)
    after = mtimes(tmp_path, second)
    assert [e["prompt"] for e in second["prompts"]] == PROMPTS[:2]
    assert {k: after[k] for k in before} == before  # the first prompt was not regenerated
    assert len(after) == 2 * 2
    assert second["prompts"][:1] == first["prompts"]
    with pytest.raises(ValueError, match="other settings"):
        run(pipe, PROMPTS[:2], tmp_path, n=3)
    with pytest.raises(ValueError, match="prompt 1 was 'a blue square moving up'"):
        run(pipe, [PROMPTS[0], "a yellow circle moving down"], tmp_path, n=2)


def test_a_crash_leaves_a_readable_manifest_and_the_rerun_completes(pipe, tmp_path):
    calls = []

    def fails_on_second_prompt(videos, prompts, dimension):
        calls.append(prompts[0])
        if len(calls) == 2:
            raise RuntimeError("reward model crashed")
        return color_match(videos, prompts)

    flaky = Reward(name="flaky", fn=fails_on_second_prompt, dimension="text_alignment")
    with pytest.raises(RuntimeError, match="reward model crashed"):
        run(pipe, PROMPTS[:2], tmp_path, rewards=[flaky], n=2)
    manifest = load_manifest(tmp_path)
    assert [e["prompt"] for e in manifest["prompts"]] == PROMPTS[:1]
    assert all((tmp_path / c["video"]).is_file() for c in manifest["prompts"][0]["candidates"])
    before = mtimes(tmp_path, manifest)
    finished = run(pipe, PROMPTS[:2], tmp_path, rewards=[flaky], n=2)
    assert [e["prompt"] for e in finished["prompts"]] == PROMPTS[:2]
    assert calls == [PROMPTS[0], PROMPTS[1], PROMPTS[1]]  # the rerun scored only the unfinished prompt
    assert {k: v for k, v in mtimes(tmp_path, finished).items() if k in before} == before


def test_best_of_8_beats_the_candidates_mean_on_every_prompt(pipe, tmp_path):
    manifest = run(pipe, PROMPTS, tmp_path, n=8, batch_size=8, rewards=[color_match])
    for entry in manifest["prompts"]:
        scores = [c["scores"]["color_match"] for c in entry["candidates"]]
        gain = prompt_gain(entry, "color_match")
        assert gain["chosen"] == max(scores) == gain["best"]
        assert len(set(scores)) > 1  # candidates differ, so selection must gain strictly
        assert gain["chosen"] > gain["mean"] and gain["gain"] > 0


def test_rank_candidates_puts_missing_scores_last():
    candidates = [{"scores": {"r": s}} for s in (0.5, None, 0.9, 0.5)]
    rank_candidates(candidates, "r", top_k=3)
    assert [c["rank"] for c in candidates] == [1, 3, 0, 2]  # ties keep generation order
    assert [c["chosen"] for c in candidates] == [True, False, True, True]
    rank_candidates(candidates, "r", top_k=4)
    assert not candidates[1]["chosen"]  # never chosen without a score


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS[:2]) + "\n\n")
    return path


@pytest.fixture
def no_generation(monkeypatch):
    """Loading a generator fails the test: bad arguments must stop the command before it."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a generator was loaded despite bad arguments")

    monkeypatch.setattr("align.commands.rerank.load_pipeline", forbidden)


# error message -> arguments; `d` holds the paths of one test (see `bad_paths`)
BAD_ARGUMENTS = {
    "unknown generator 'no/such-model'": lambda d: ["--generator", "no/such-model", *d["base"]],
    "missing.txt does not exist": lambda d: [*d["base"], "--prompts", str(d["tmp"] / "missing.txt")],
    "holds no prompts": lambda d: [*d["base"], "--prompts", str(d["empty"])],
    "not a reward model folder": lambda d: [*d["base"], "--reward", str(d["tmp"] / "no_model")],
    "unknown rule reward": lambda d: [*d["base"], "--reward", "rule:beauty"],
    "cannot write to output folder": lambda d: [*d["base"], "--out", str(d["a_file"] / "out")],
    "need 1 <= --top-k <= --n": lambda d: [*d["base"], "--n", "2", "--top-k", "3"],
    "names a reward twice": lambda d: [*d["base"], "--reward", "rule:color_match"],
}


@pytest.fixture
def bad_paths(tmp_path, prompt_file):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "empty.txt").write_text("\n  \n")
    base = ["--reward", "rule:color_match", "--prompts", str(prompt_file), "--out", str(tmp_path / "out")]
    return {"tmp": tmp_path, "a_file": tmp_path / "a_file", "empty": tmp_path / "empty.txt", "base": base}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_fail_before_generation(case, bad_paths, no_generation, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["rerank", *BAD_ARGUMENTS[case](bad_paths)])
    assert exit_info.value.code == 2
    assert case in capsys.readouterr().err
    assert not (bad_paths["tmp"] / "out" / "videos").exists()


def test_a_folder_holding_another_run_fails_before_generation(samples, prompt_file, no_generation, capsys):
    out, _ = samples
    args = [
        "rerank",
        "--prompts",
        str(prompt_file),
        "--reward",
        "rule:color_match",
        "--reward",
        "rule:motion",
    ]
    with pytest.raises(SystemExit):
        cli([*args, "--n", "5", "--steps", str(STEPS), "--out", str(out)])
    assert "other settings" in capsys.readouterr().err


def test_command_writes_samples_gallery_plot_summary_and_pairs(
    tmp_path, prompt_file, tiny_reward_model_dir, capsys
):
    out = tmp_path / "run"
    args = ["rerank", "--generator", "tiny", "--prompts", str(prompt_file), "--reward", "rule:color_match"]
    args += [
        "--reward",
        f"{tiny_reward_model_dir}:visual_quality",
        "--n",
        "3",
        "--top-k",
        "2",
        "--steps",
        str(STEPS),
    ]
    assert cli([*args, "--batch-size", "2", "--out", str(out), "--pairs", "all"]) == 0
    printed = capsys.readouterr().out
    assert "ranking reward: color_match, top-2" in printed
    assert all(p in printed for p in PROMPTS[:2])
    manifest = load_manifest(out)
    assert manifest["settings"] == {
        "generator": "tiny",
        "n": 3,
        "seed": 0,
        "num_inference_steps": STEPS,
        "guidance_scale": 6.0,
    }
    assert all(sum(c["chosen"] for c in e["candidates"]) == 2 for e in manifest["prompts"])
    gallery = (out / GALLERY_NAME).read_text()
    for entry in manifest["prompts"]:
        ordered = sorted(entry["candidates"], key=lambda c: c["rank"])
        positions = [gallery.index(f'<video src="{c["video"]}"') for c in ordered]
        assert positions == sorted(positions)  # best first
    assert gallery.count("<video ") == 6 and f"{tiny_reward_model_dir}:visual_quality" in gallery
    assert (out / GAIN_PLOT_NAME).read_bytes().startswith(PNG_MAGIC)
    corpus = load_corpus(out)
    assert corpus.video_root.resolve() == out.resolve()
    assert len(corpus.pairs["train"]) == 2 * 3  # all pairs of 3 candidates with distinct scores, 2 prompts
    for row in corpus.pairs["train"]:
        assert (
            corpus.video_path(row["chosen_latents"]).is_file()
            and corpus.video_path(row["rejected_video"]).is_file()
        )


# --- reranking existing videos -----------------------------------------------------------------


def test_rerank_videos_ranks_skips_broken_files_and_resumes(tmp_path):
    videos = tmp_path / "videos"
    listing = []
    for i, color in enumerate(("blue", "red", "green")):
        name = f"{color}.mp4"
        write_video(render_video(f"a {color} circle moving left", np.random.default_rng(i)), videos / name)
        listing.append({"video": f"videos/{name}", "prompt": "a red circle moving left"})
    (videos / "broken.mp4").write_bytes(b"")
    listing.append({"video": "videos/broken.mp4", "prompt": "a red circle moving left"})
    listing.append({"video": "videos/blue.mp4", "prompt": "a blue circle moving left"})
    (tmp_path / "videos.json").write_text(json.dumps(listing))
    out = tmp_path / "ranked"
    manifest = rerank_videos(tmp_path, [color_match, motion], out, top_k=1, num_frames=16)
    red, blue = manifest["prompts"]
    assert red["prompt"] == "a red circle moving left" and len(red["candidates"]) == 3
    best = min(red["candidates"], key=lambda c: c["rank"])
    assert best["video"] == "../videos/red.mp4" and best["chosen"]  # relative to the manifest's folder
    assert (out / best["video"]).is_file()
    assert red["skipped"] == [{"video": "../videos/broken.mp4", "reason": "empty file (0 bytes)"}]
    assert blue["candidates"][0]["chosen"]
    assert rerank_videos(tmp_path, [color_match, motion], out, top_k=1, num_frames=16) == manifest


def test_rerank_videos_reads_a_manifest_keeping_latents(samples, tmp_path):
    source, _ = samples
    manifest = rerank_videos(source, [motion], tmp_path / "by_motion", top_k=2, num_frames=9)
    assert manifest["rewards"] == [{"name": "motion", "dimension": "dynamic_degree"}]
    for entry in manifest["prompts"]:
        assert len(entry["candidates"]) == N
        for cand in entry["candidates"]:
            assert (tmp_path / "by_motion" / cand["latents"]).is_file()
            assert cand["seed"] is not None


def test_listing_errors_name_the_file_and_row(tmp_path):
    (tmp_path / "videos.csv").write_text("video,prompt\na.mp4,a red circle moving left\nb.mp4,\n")
    with pytest.raises(ValueError, match=r"videos.csv: row 1 needs non-empty 'video' and 'prompt'"):
        rerank_videos(tmp_path, [color_match], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty holds none of manifest.json, videos.json, videos.csv"):
        rerank_videos(tmp_path / "empty", [color_match], tmp_path / "out")


# --- pairs from samples -------------------------------------------------------------------------


def hand_manifest(scores: dict[str, list[float | None]]) -> dict:
    prompts = [
        {
            "index": i,
            "prompt": prompt,
            "skipped": [],
            "candidates": [
                {
                    "candidate": c,
                    "video": f"v{i}{c}.mp4",
                    "latents": f"l{i}{c}.safetensors",
                    "seed": 10 * i + c,
                    "scores": {"r": s},
                }
                for c, s in enumerate(values)
            ],
        }
        for i, (prompt, values) in enumerate(scores.items())
    ]
    return {
        "format": "clevereward-samples-v1",
        "rewards": [{"name": "r", "dimension": None}],
        "prompts": prompts,
    }


def test_pairs_from_a_hand_made_manifest():
    manifest = hand_manifest({"p": [3.0, 1.0, 2.0, None], "q": [5.0, 5.0], "held": [0.0, 1.0]})
    best_vs_worst = pairs_from_manifest(manifest, test_prompts=["held"])
    train = best_vs_worst["train"]
    assert len(train) == 1  # q's candidates are equal: no pair
    row = train[0]
    assert (row["chosen_video"], row["rejected_video"], row["margin"]) == ("v00.mp4", "v01.mp4", 2.0)
    assert (row["chosen_latents"], row["rejected_latents"], row["chosen_seed"], row["rejected_seed"]) == (
        "l00.safetensors",
        "l01.safetensors",
        0,
        1,
    )
    assert (row["chosen_score"], row["rejected_score"], row["tie"]) == (3.0, 1.0, False)
    assert (row["dimension"], row["source"], row["kind"]) == ("overall", "generated", "same_prompt")
    assert best_vs_worst["test"]["prompt"] == ["held"]
    everything = pairs_from_manifest(manifest)  # no held-out prompts: one split
    assert list(everything) == ["train"]
    assert list(
        zip(everything["train"]["chosen_video"], everything["train"]["rejected_video"], strict=True)
    ) == [
        ("v00.mp4", "v01.mp4"),
        ("v21.mp4", "v20.mp4"),
    ]
    all_pairs = pairs_from_manifest(manifest, strategy="all")["train"]
    assert sorted(all_pairs["margin"]) == [1.0, 1.0, 1.0, 2.0]  # p: 3>2, 3>1, 2>1; held: 1>0
    assert list(pairs_from_manifest(manifest, strategy="all", min_gap=1.5)["train"]["margin"]) == [2.0]
    with pytest.raises(ValueError, match="unknown pair strategy"):
        pairs_from_manifest(manifest, strategy="random")
    with pytest.raises(ValueError, match="no scores of reward 'motion'"):
        pairs_from_manifest(manifest, reward="motion")


def test_sample_pairs_corpus_has_the_columns_and_latents(samples, tmp_path):
    out, manifest = samples
    corpus_dir = save_sample_pairs(out, tmp_path / "pairs", reward="motion", strategy="best_vs_worst")
    corpus = load_corpus(corpus_dir)
    train = corpus.pairs["train"]
    assert set(PAIR_COLUMNS) <= set(train.column_names)
    assert set(SAMPLE_PAIR_FEATURES) == set(train.column_names)
    assert len(train) == len(manifest["prompts"])
    assert set(train["dimension"]) == {"dynamic_degree"}  # the motion reward's dimension
    for row in train:
        assert row["margin"] > 0 and row["chosen_score"] - row["rejected_score"] == pytest.approx(
            row["margin"]
        )
        for key in ("chosen_latents", "rejected_latents", "chosen_video", "rejected_video"):
            assert corpus.video_path(row[key]).is_file()
        latents = load_file(corpus.video_path(row["chosen_latents"]))["latents"]
        assert latents.shape == (3, 4, 4, 4)
