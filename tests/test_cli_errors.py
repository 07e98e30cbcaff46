"""Every `clevereward` command answers a user's mistake with one line and exit status 2."""

import pytest

from align.cli import COMMANDS, main

# command line -> a part of the one-line message that names what is wrong
BAD = {
    "demo": (["demo", "--reward-config", "missing.yaml"], "config file missing.yaml does not exist"),
    "data synth": (["data", "synth", "--out", "{tmp}/w", "--pairs-per-dimension", "1"], "need at least 3 pairs per dimension (one per split), got 1"),
    "data simulate": (["data", "simulate", "--out", "{tmp}/g", "--prompts", "40"], "40 prompts asked of the train split, which has 28 captions"),
    "experiment videocross": (["experiment", "videocross", "--out", "{tmp}/x", "--seeds", "-1"], "--seeds must be >= 0, got [-1]"),
    "data build": (["data", "build", "--source", "t2vqa={tmp}/info.txt", "--video-root", "{tmp}", "--out", "{tmp}/c"],
                   "source 't2vqa': {tmp}/info.txt does not exist"),
    "data inspect": (["data", "inspect", "{tmp}/nothing"], "corpus.json is missing"),
    "data through-generator": (["data", "through-generator", "--corpus", "{tmp}/none", "--generator", "tiny", "--out",
                                "{tmp}/o"], "--corpus {tmp}/none: corpus.json is missing"),
    "train": (["train", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
    "eval": (["eval", "--model", "{tmp}/nomodel", "--data", "{tmp}"], "{tmp}/nomodel: no such folder"),
    "score": (["score", "--model", "{tmp}/nomodel", "--videos", "a.mp4", "--prompts", "x"], "{tmp}/nomodel: no such folder"),
    "rerank": (["rerank", "--generator", "THUDM/CogVideoX-2b", "--prompts", "{tmp}/prompts.txt", "--reward",
                "rule:motion", "--out", "{tmp}/r"], "generator 'THUDM/CogVideoX-2b' is not a local folder"),
    "align": (["align", "--reward", "rule:nope", "--out", "{tmp}/a"], "unknown rule reward 'rule:nope'"),
    "generator pretrain": (["generator", "pretrain", "--num_frames", "8", "--output_dir", "{tmp}/g"],
                           "num_frames=8: CogVideoX's VAE needs (num_frames - 1) % 4 == 0"),
    "sample": (["sample", "--generator", "tiny", "--prompts", "synthetic:nope", "--out", "{tmp}/s"],
               "--prompts synthetic:nope: the synthetic world's splits are"),
    "check": (["check", "{tmp}/nowhere"], "{tmp}/nowhere: no samples.jsonl"),
    "align-train": (["align-train", "--config", "configs/align/tiny-dpo.yaml", "--algorithm", "nope"],
                    "algorithm must be one of"),
    "compare": (["compare", "--methods", "dpo", "nope", "--out", "{tmp}/c"], "methods ['nope'] unknown"),
}  # fmt: skip


def test_every_command_has_a_bad_input_case():
    assert set(BAD) == set(COMMANDS)


@pytest.fixture
def quiet_diffusers():
    """diffusers' own "could not reach the hub" warning goes to a handler bound to the stderr of an
    earlier test; the line under test is ours."""
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    yield
    diffusers_logging.set_verbosity(level)


@pytest.mark.parametrize("command", sorted(BAD))
def test_a_bad_argument_is_one_line_and_exit_status_2(command, tmp_path, capsys, quiet_diffusers):
    (tmp_path / "prompts.txt").write_text("a red circle moving left\n")
    argv, expected = BAD[command]
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    last = err[-1]
    assert last.startswith(f"clevereward {command}: error: "), err
    assert expected.format(tmp=tmp_path) in last, last
    assert "Traceback" not in "\n".join(err)


def test_a_usage_error_of_the_parser_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as done:  # the console script exits with it
        main(["rerank", "--prompts", "p.txt"])  # --reward and --out are required
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "clevereward rerank: error: the following arguments are required"
    )


def test_debug_shows_the_traceback():
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        main(["train", "--config", "missing.yaml", "--debug"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_help_page(command, capsys):
    # argparse formats help strings with %: an unescaped one breaks --help (it did, for a frame rule)
    with pytest.raises(SystemExit) as done:
        main([*command.split(), "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--generator", "nowhere"], "unknown generator 'nowhere'"),
        (["--methods", "dpo", "nope"], "methods ['nope'] unknown; choose from"),
    ],
)
def test_the_demo_refuses_a_bad_alignment_stage_before_any_work(tmp_path, capsys, argv, message):
    assert main(["demo", "--out", str(tmp_path / "demo"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing rendered or trained
