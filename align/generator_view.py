"""A pair corpus seen through a generator's decoder: what a reward model must read to judge that generator.

    clevereward data through-generator --corpus runs/demo/data --generator world \
        --out runs/demo/data-generator-view

A reward model trained on clean renderings misreads a small generator's samples (soft, noisy,
irregular objects): on the world generator's samples the synthetic-world reward read almost every
object as a square. Reward models of real generators are trained on generated videos for this
reason. Here every video of a corpus is encoded by the generator's VAE, its latents perturbed by
Gaussian noise of a random scale in [0, `latent_noise`] (an imperfect generation of the same
content), and decoded again; the pairs, their labels and their splits are unchanged — they still
come from the world's rendering, never from a check of generated samples.

Outputs: `out/videos/...` (same relative paths, the generator's frame count and size),
`out/pairs` and `out/corpus.json` (a copy, with `generator_view` recording the settings). A video
that cannot be read is skipped and counted; a rerun skips videos already written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from reward.files import write_json
from reward.video import VideoReadError, read_video, write_video

__all__ = ["through_generator", "main"]

_BATCH = 32
_FPS = 8  # the synthetic world's frame rate


def through_generator(
    corpus: str | Path, pipe, out: str | Path, latent_noise: float = 0.5, seed: int = 0
) -> dict:
    """Write `corpus` seen through `pipe`'s VAE to `out`; returns {"videos", "skipped", "written"}."""
    from align.cogvideox import decode_latents, default_video_size, encode_videos_to_latents

    corpus, out = Path(corpus), Path(out)
    meta = json.loads((corpus / "corpus.json").read_text())
    root = corpus / meta.get("video_root", "videos")
    height, width, frames = default_video_size(pipe)
    paths = sorted(p.relative_to(root) for p in root.rglob("*.mp4"))
    todo = [p for p in paths if not (out / "videos" / p).is_file()]
    skipped: list[str] = []
    for start in tqdm(range(0, len(todo), _BATCH), desc="through generator", unit="batch"):
        batch, names = [], []
        for rel in todo[start : start + _BATCH]:
            try:
                batch.append(read_video(root / rel, frames, size=(height, width)).float() / 255)
                names.append(rel)
            except VideoReadError:
                skipped.append(str(rel))
        if not batch:
            continue
        latents = encode_videos_to_latents(pipe, torch.stack(batch))  # [b, F_lat, C, h, w]
        rng = np.random.default_rng([seed, start])
        scales = torch.from_numpy(rng.uniform(0, latent_noise, len(batch))).float().view(-1, 1, 1, 1, 1)
        noise = torch.from_numpy(rng.standard_normal(latents.shape)).float()
        videos = decode_latents(pipe, latents + scales * noise)  # [b, F, C, H, W] in [0, 1]
        for rel, video in zip(names, videos):
            target = out / "videos" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            write_video((video * 255).round().to(torch.uint8), target, fps=_FPS)
    if (out / "pairs").exists():
        shutil.rmtree(out / "pairs")
    shutil.copytree(corpus / "pairs", out / "pairs")
    for extra in root.glob("*.json"):  # e.g. the world's render parameters
        shutil.copy(extra, out / "videos" / extra.name)
    settings = {"generator": str(getattr(pipe, "name_or_path", "") or ""), "latent_noise": latent_noise, "seed": seed,
                "source_corpus": str(corpus), "frames": frames, "height": height, "width": width}  # fmt: skip
    write_json(out / "corpus.json", {**meta, "video_root": "videos", "generator_view": settings})
    return {"videos": len(paths), "written": len(todo) - len(skipped), "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    """a pair corpus seen through a generator's VAE (with latent noise): what a reward for that generator reads"""
    from align.cogvideox import load_pipeline
    from reward.commands import CommandParser

    parser = CommandParser("clevereward data through-generator", __doc__)
    parser.add_argument(
        "--corpus", required=True, help="a VideoCross corpus folder (corpus.json, pairs/, videos/)"
    )
    parser.add_argument("--generator", required=True, help="a CogVideoX pipeline folder (its VAE is used)")
    parser.add_argument("--out", required=True, help="output corpus folder (a rerun resumes)")
    parser.add_argument(
        "--latent-noise", type=float, default=0.5, help="largest latent noise scale (scaled latents)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args(argv)
    if not (Path(args.corpus) / "corpus.json").is_file():
        raise FileNotFoundError(
            f"--corpus {args.corpus}: corpus.json is missing (build one with `clevereward data`)"
        )
    report = through_generator(
        args.corpus, load_pipeline(args.generator), args.out, args.latent_noise, args.seed
    )
    print(
        f"{report['written']} of {report['videos']} videos written to {args.out}; {len(report['skipped'])} skipped"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
