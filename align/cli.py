"""The `clevereward` console script: one dispatcher over every command of both packages.

It lives in `align` because `align` may import `reward` but not the other way round. Each
command is a module with `main(argv: list[str] | None = None)`; the first line of its
docstring is its help. Modules are imported only when their command runs, so `--help` is fast.

Errors a user causes (a missing or unreadable file, an unknown source, reward or generator, an
invalid value, a model that is neither local nor downloadable) end the command with one line,
`clevereward <command>: error: <what is wrong>`, and exit status 2. `--debug` (anywhere on the
command line) or `CLEVEREWARD_DEBUG=1` (`DEBUG_ENV`) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import sys

import yaml

from reward.commands import DEBUG_ENV, debug_enabled, print_error

__all__ = ["COMMANDS", "USER_ERRORS", "DEBUG_FLAG", "DEBUG_ENV", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("align.commands.demo", "the main job on the synthetic world: data, reward model, alignment"),
    "data synth": ("reward.commands.data_synth", "render the synthetic preference world"),
    "data build": ("reward.commands.data_build", "build VideoCross pairs from public datasets"),
    "data simulate": (
        "reward.commands.data_simulate",
        "simulate five scoring datasets of the graded world (synthetic-v2), in their public formats",
    ),
    "data through-generator": (
        "align.generator_view",
        "a pair corpus seen through a generator's VAE: what a reward for that generator reads",
    ),
    "experiment videocross": (
        "reward.experiment",
        "the VideoCross claim on the graded world: each source alone vs merged, harmonised or naive",
    ),
    "data inspect": ("reward.commands.data_inspect", "counts, ties and margins of a pair corpus"),
    "train": ("reward.train", "train a reward model (same as `accelerate launch -m reward.train`)"),
    "eval": ("reward.commands.evaluate", "pairwise accuracy and correlations of a reward model"),
    "score": ("reward.commands.score", "score videos with a reward model, as JSON lines"),
    "rerank": ("align.commands.rerank", "best-of-N: generate, score and keep the best samples"),
    "align": ("align.commands.align", "online rounds: sample, score, build pairs, train"),
    "generator pretrain": (
        "align.pretrain",
        "pretrain a small CogVideoX on the synthetic world (the base to align)",
    ),
    "sample": (
        "align.commands.sample",
        "sample prompts x seeds into mp4 files + samples.jsonl (for `check`)",
    ),
    "check": (
        "align.commands.check",
        "independent check of synthetic-world samples: prompt accuracy, quality",
    ),
    "align-train": (
        "align.train",
        "Diffusion-DPO / RWR / GRPO / reward-gradient fine-tuning (same as `accelerate launch -m align.train`)",
    ),
    "compare": (
        "align.experiment",
        "every alignment method on one reward budget, judged by the independent check",
    ),
}


# bitsandbytes (imported by peft) warns on every start, on CPUs with AVX-512 BF16, that it could not
# fetch an optional faster 4-bit CPU kernel from the hub; its fallback works. Commands print
# their own errors, so only that logger is quietened, and only in the console script.
_QUIET_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


# What a user's input can cause: bad paths and files (OSError), bad values (ValueError; also
# VideoReadError), a missing split or column (KeyError), a malformed YAML recipe. Anything else is
# a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, yaml.YAMLError)
DEBUG_FLAG = "--debug"


def _one_line(error: BaseException) -> str:
    """The error's message on one line (KeyError quotes its key; multi-line messages keep their first line)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _run(name: str, argv: list[str], debug: bool) -> int:
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"clevereward {name}", *argv]
    try:
        return int(module.main(argv) or 0)
    except SystemExit as done:
        if isinstance(done.code, str):  # raise SystemExit("message"): a usage error in words
            print_error(name, done.code)
            return 2
        raise  # argparse: --help (0) or a usage error, already printed as one line (2)
    except USER_ERRORS as error:
        if debug:
            raise
        print_error(name, _one_line(error))
        return 2


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: clevereward COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `clevereward COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or debug_enabled()
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return _run(name, argv[words:], debug)
    if argv and argv[0] not in ("-h", "--help"):
        print(f"clevereward: unknown command {' '.join(argv[:2])!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    print(_usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
