"""Counts, ties and margins of a pair corpus; saves DIR/inspect.png.

    clevereward data inspect corpus

Prints pairs per source × dimension × split, pairs per kind, the tie share per dimension and
the quantiles of the margins of the non-tie pairs, then draws the counts and the margin
histogram into DIR/inspect.png (written atomically).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from reward.commands import CommandParser

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import pandas as pd  # noqa: E402

from reward.files import atomic_write  # noqa: E402
from reward.pairs import SPLITS, load_corpus  # noqa: E402

__all__ = ["MARGIN_QUANTILES", "PLOT_NAME", "pairs_frame", "summarise", "plot", "main"]

MARGIN_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PLOT_NAME = "inspect.png"
MARGIN_BINS = 20
FIGURE_SIZE = (12, 5)
FIGURE_DPI = 100


def pairs_frame(path: str | Path) -> pd.DataFrame:
    """All pairs of the corpus at `path` as one table with a `split` column."""
    corpus = load_corpus(path)
    frames = [
        corpus.pairs[split].to_pandas().assign(split=split) for split in SPLITS if split in corpus.pairs
    ]
    return pd.concat(frames, ignore_index=True)


def summarise(pairs: pd.DataFrame) -> dict[str, pd.DataFrame | pd.Series]:
    """Counts per source × dimension × split, per kind × split, tie share per dimension, margin quantiles."""
    counts = pairs.pivot_table(
        index=["source", "dimension"], columns="split", values="prompt", aggfunc="size", fill_value=0
    )
    counts = counts.reindex(columns=[s for s in SPLITS if s in counts.columns])
    counts["total"] = counts.sum(axis=1)
    kinds = pairs.groupby(["kind", "split"]).size().unstack(fill_value=0)
    kinds = kinds.reindex(columns=[s for s in SPLITS if s in kinds.columns])
    ties = pairs.groupby("dimension")["tie"].mean().rename("tie share")
    decided = pairs.loc[~pairs["tie"], "margin"]
    quantiles = decided.quantile(list(MARGIN_QUANTILES)) if len(decided) else pd.Series(dtype=float)
    return {"counts": counts, "kinds": kinds, "ties": ties, "margin_quantiles": quantiles.rename("margin")}


def plot(pairs: pd.DataFrame, path: Path) -> None:
    """Pairs per source/dimension (stacked by split) and the histogram of non-tie margins, as a PNG."""
    fig, (ax_counts, ax_margin) = plt.subplots(1, 2, figsize=FIGURE_SIZE)
    counts = pairs.groupby(["source", "dimension", "split"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[s for s in SPLITS if s in counts.columns])
    counts.index = [f"{source} / {dimension}" for source, dimension in counts.index]
    counts.plot.barh(stacked=True, ax=ax_counts)
    ax_counts.set_xlabel("pairs")
    ax_counts.set_title("pairs per source / dimension")
    decided = pairs[~pairs["tie"]]
    for dimension, group in decided.groupby("dimension"):
        ax_margin.hist(group["margin"], bins=MARGIN_BINS, range=(0, 1), alpha=0.6, label=dimension)
    ax_margin.set_xlabel("margin (normalised score gap)")
    ax_margin.set_ylabel("pairs")
    ax_margin.set_title(f"margins of non-tie pairs (tie share {pairs['tie'].mean():.1%})")
    if len(decided):
        ax_margin.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=FIGURE_DPI)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("clevereward data inspect", __doc__)
    parser.add_argument("corpus", help="Corpus folder (made by `clevereward data build` or `data synth`).")
    args = parser.parse_args(argv)
    pairs = pairs_frame(args.corpus)
    if pairs.empty:
        print(f"{args.corpus}: the corpus holds no pairs")
        return 1
    summary = summarise(pairs)
    print("pairs per source × dimension × split\n", summary["counts"].to_string(), "\n", sep="")
    print("pairs per kind × split\n", summary["kinds"].to_string(), "\n", sep="")
    print("tie share per dimension\n", summary["ties"].to_string(float_format="{:.3f}".format), "\n", sep="")
    quantiles = summary["margin_quantiles"]
    print("margin quantiles (non-tie pairs)\n", quantiles.to_string(float_format="{:.3f}".format), sep="")
    out = Path(args.corpus) / PLOT_NAME
    plot(pairs, out)
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
