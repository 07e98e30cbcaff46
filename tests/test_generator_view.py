"""A corpus seen through a generator's VAE: same pairs and splits, the generator's frames and size,
latent noise of the given scale, resumable; the reward trainer reads it like any corpus."""

import json

from align.cogvideox import tiny_pipeline
from align.generator_view import through_generator
from reward.video import read_video


def test_through_generator_keeps_the_pairs_and_takes_the_generators_geometry(synthetic_corpus_dir, tmp_path):
    pipe = tiny_pipeline()
    out = tmp_path / "view"
    report = through_generator(synthetic_corpus_dir, pipe, out, latent_noise=0.3, seed=1)
    source = sorted(
        p.relative_to(synthetic_corpus_dir / "videos")
        for p in (synthetic_corpus_dir / "videos").rglob("*.mp4")
    )
    written = sorted(p.relative_to(out / "videos") for p in (out / "videos").rglob("*.mp4"))
    assert written == source and report["written"] == len(source) and not report["skipped"]
    frames = read_video(out / "videos" / written[0], 9)
    assert tuple(frames.shape) == (9, 3, 32, 32)  # the tiny generator's 9 frames at 32 x 32
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["generator_view"]["latent_noise"] == 0.3 and (out / "pairs").is_dir()
    again = through_generator(synthetic_corpus_dir, pipe, out, latent_noise=0.3, seed=1)
    assert again["written"] == 0  # a rerun skips what is there


def test_noise_scale_zero_is_the_vae_round_trip(synthetic_corpus_dir, tmp_path):
    from align.cogvideox import decode_latents, encode_videos_to_latents

    pipe = tiny_pipeline()
    rel = next((synthetic_corpus_dir / "videos").rglob("*.mp4")).relative_to(synthetic_corpus_dir / "videos")
    clip = read_video(synthetic_corpus_dir / "videos" / rel, 9, size=(32, 32)).float()[None] / 255
    expected = (decode_latents(pipe, encode_videos_to_latents(pipe, clip))[0] * 255).round()
    views = {}
    for noise in (0.0, 5.0):
        through_generator(synthetic_corpus_dir, pipe, tmp_path / str(noise), latent_noise=noise)
        views[noise] = read_video(tmp_path / str(noise) / "videos" / rel, 9).float()
    # the mp4 codec alone costs a few levels on the random VAE's noisy texture
    assert (views[0.0] - expected).abs().mean() < 8
    assert (views[5.0] - views[0.0]).abs().mean() > 1  # latent noise changes the decoded video
