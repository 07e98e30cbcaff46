"""best-of-N: generate, score and keep the best samples.

    clevereward rerank --generator tiny --reward rule:color_match --prompts prompts.txt \\
        --n 8 --top-k 1 --steps 4 --out runs/rerank
    clevereward rerank --videos runs/rerank --reward runs/reward_model:text_alignment --out runs/rescored

Every argument is checked before any model loads or any video is generated. The output folder
gets videos/, latents/, manifest.json (rewritten after every prompt; rerunning resumes),
gallery.html, gain.png and, with --pairs, a Diffusion-DPO pair corpus (pairs/, corpus.json).
"""

from __future__ import annotations

from align.cogvideox import KNOWN_GENERATORS, TINY, load_pipeline, validate_generator
from align.manifest import plot_gain, summary_table, write_gallery
from align.preference import PAIR_STRATEGIES, save_sample_pairs
from align.rerank import (
    check_writable,
    read_listing,
    read_prompts,
    rerank,
    rerank_videos,
    resume_manifest,
    sampling_settings,
)
from align.rewards import resolve_reward
from reward.commands import CommandParser

__all__ = ["main"]

# Sampling defaults where the generator has no model card (tiny, local folders): CogVideoX-2b's.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 6.0
# Frames read per video with --videos: the synthetic world's clip length.
DEFAULT_VIDEO_FRAMES = 16


def _parser() -> CommandParser:
    parser = CommandParser("clevereward rerank", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help="text file, one prompt per line: generate candidates for each")
    source.add_argument(
        "--videos",
        help="rerank existing videos instead: a folder (or file) with manifest.json, videos.json "
        "([{video, prompt}]) or videos.csv (columns video,prompt); paths relative to it",
    )
    parser.add_argument(
        "--reward",
        action="append",
        required=True,
        help="rule:color_match | rule:motion | rule:check (oracle) | MODEL_DIR | MODEL_DIR:DIMENSION; repeat to record "
        "several scores, the first one ranks",
    )
    parser.add_argument("--out", required=True, help="output folder (resumes a run already there)")
    parser.add_argument(
        "--generator", default=TINY, help=f"'{TINY}', a hub id ({', '.join(KNOWN_GENERATORS)}) or a folder"
    )
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt")
    parser.add_argument("--top-k", type=int, default=1, help="candidates kept (marked chosen) per prompt")
    parser.add_argument(
        "--steps", type=int, help=f"denoising steps (default: model card, else {DEFAULT_STEPS})"
    )
    parser.add_argument(
        "--guidance",
        type=float,
        help=f"classifier-free guidance (default: model card, else {DEFAULT_GUIDANCE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="run seed; candidate seeds derive from it")
    parser.add_argument(
        "--batch-size", type=int, help="candidates per pipeline call (default: all N at once)"
    )
    parser.add_argument("--height", type=int, help="video height (default: the generator's)")
    parser.add_argument("--width", type=int, help="video width (default: the generator's)")
    parser.add_argument(
        "--frames",
        type=int,
        help=f"frames generated (default: the generator's) or read with --videos (default {DEFAULT_VIDEO_FRAMES})",
    )
    parser.add_argument(
        "--size", type=int, help="with --videos: resize frames to SIZE x SIZE so a prompt's videos stack"
    )
    parser.add_argument("--device", help="where the generator runs (default: cuda if available, else cpu)")
    parser.add_argument(
        "--pairs", choices=PAIR_STRATEGIES, help="also write DPO pairs from the samples into --out"
    )
    parser.add_argument(
        "--min-gap", type=float, default=0.0, help="with --pairs: the smallest reward gap that makes a pair"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Everything that can be wrong with the arguments fails here, before a model loads.
    try:
        rewards = [resolve_reward(spec) for spec in args.reward]
        names = [reward.name for reward in rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"--reward names a reward twice: {names}")
        if args.top_k < 1 or (args.batch_size is not None and args.batch_size < 1):
            raise ValueError(f"--top-k and --batch-size must be >= 1 (got {args.top_k}, {args.batch_size})")
        if args.prompts is not None and not 1 <= args.top_k <= args.n:
            raise ValueError(f"need 1 <= --top-k <= --n, got --top-k {args.top_k} and --n {args.n}")
        if args.min_gap < 0:
            raise ValueError(f"--min-gap must be >= 0, got {args.min_gap}")
        if args.prompts is not None:
            prompts = read_prompts(args.prompts)
            validate_generator(args.generator)
            spec = KNOWN_GENERATORS.get(args.generator)
            sizes = {"height": args.height, "width": args.width, "num_frames": args.frames}
            generate_kwargs = {key: value for key, value in sizes.items() if value is not None}
            steps = args.steps or (spec.num_inference_steps if spec else DEFAULT_STEPS)
            guidance = (
                args.guidance
                if args.guidance is not None
                else (spec.guidance_scale if spec else DEFAULT_GUIDANCE)
            )
            settings = sampling_settings(args.generator, args.n, args.seed, steps, guidance, generate_kwargs)
        else:
            read_listing(args.videos)
        out = check_writable(args.out)
        if args.prompts is not None:
            resume_manifest(out, settings, rewards, args.top_k, prompts)
    except (ValueError, OSError) as err:
        parser.error(str(err))

    if args.prompts is not None:
        pipe = load_pipeline(args.generator, device=args.device)
        manifest = rerank(
            pipe,
            prompts,
            rewards,
            out,
            n=args.n,
            top_k=args.top_k,
            seed=args.seed,
            batch_size=args.batch_size or args.n,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator_name=args.generator,
            generate_kwargs=generate_kwargs,
        )
    else:
        frames = args.frames or DEFAULT_VIDEO_FRAMES
        manifest = rerank_videos(
            args.videos, rewards, out, top_k=args.top_k, num_frames=frames, size=args.size
        )
    write_gallery(out, manifest)
    plot_gain(out, manifest)
    print(summary_table(manifest))
    print(f"samples, manifest, gallery.html and gain.png in {out}")
    if args.pairs:
        save_sample_pairs(out, strategy=args.pairs, min_gap=args.min_gap)
        print(f"{args.pairs} pairs written as a corpus in {out} (reward.pairs.load_corpus)")
    return 0
