"""`clevereward generator pretrain` for a few steps: a loadable CogVideoXPipeline, deterministic, resumable."""

import json

import pytest

from align.cli import main as cli
from align.cogvideox import generate, load_pipeline
from align.pretrain import LOSS_LOG, LOSS_PLOT, PIPELINE_DIR, PretrainConfig, pretrain

# The recipe's architecture; only the amount of data and training is cut.
QUICK = ["--clips_per_caption", "1", "--vae_steps", "4", "--vae_batch_size", "2", "--steps", "4",
         "--batch_size", "4", "--checkpoint_steps", "2", "--log_steps", "1"]  # fmt: skip


def _losses(out):
    return [
        (r["stage"], r["step"], r["loss"]) for r in map(json.loads, (out / LOSS_LOG).read_text().splitlines())
    ]


def test_pretrain_writes_a_pipeline_that_samples(tmp_path):
    out = tmp_path / "world"
    assert (
        cli(
            [
                "generator",
                "pretrain",
                "--config",
                "configs/generator/world.yaml",
                "--output_dir",
                str(out),
                *QUICK,
            ]
        )
        == 0
    )
    pipe = load_pipeline(str(out / PIPELINE_DIR), device="cpu")
    batch = generate(pipe, ["a red circle moving left"], [0], num_inference_steps=2, guidance_scale=3.0)
    assert batch.videos.shape == (1, 9, 3, 32, 32)  # the recipe's size, from the saved configs
    assert pipe.vae.config.scaling_factor != 1.0  # set from the training latents
    assert [s for s, _, _ in _losses(out)] == ["vae"] * 4 + ["transformer"] * 4
    assert (out / LOSS_PLOT).read_bytes().startswith(b"\x89PNG")


def test_pretrain_is_deterministic_and_resumes(tmp_path):
    def config(out, **kw):
        fields = dict(clips_per_caption=1, vae_steps=4, vae_batch_size=2, steps=4, batch_size=4, checkpoint_steps=2,
                      log_steps=1, output_dir=str(out))  # fmt: skip
        return PretrainConfig(**{**fields, **kw})

    pretrain(config(tmp_path / "a"))
    pretrain(config(tmp_path / "b"))
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    # interrupted after 2 transformer steps: the rerun continues with the same next losses
    pretrain(config(tmp_path / "c", steps=2))
    pretrain(config(tmp_path / "c"))
    full, resumed = _losses(tmp_path / "a"), _losses(tmp_path / "c")
    assert resumed[-2:] == full[-2:]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match=r"num_frames=8: .*\(num_frames - 1\) % 4 == 0"):
        PretrainConfig(num_frames=8)
    with pytest.raises(ValueError, match="multiples of 8"):
        PretrainConfig(height=36)
