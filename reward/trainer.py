"""Training video reward models with TRL's `RewardTrainer`: config, collator and one subclass.

`VideoRewardTrainer` overrides only what video needs:
- dataset preparation: pair corpora are not tokenised by TRL; their columns are checked and kept
  (`remove_unused_columns=False`), ties are dropped (and counted) only if the tie loss is off;
- the collator `VideoPreferenceCollator` reads videos and asks the model for its inputs
  (`model.build_inputs`, the hook every CleveReward model implements);
- `compute_loss`: Bradley–Terry with margin, or Rao–Kupper when the data has ties
  (`reward.losses`), TRL's `center_rewards_coefficient`, per-dimension accuracy and margin;
- the embedding cache: with a frozen tower, features come from `reward.cache` instead of pixels.

A pair whose video cannot be read is skipped, counted (`skipped_pairs` in the logs) and named in
a warning; training goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput
from trl import RewardConfig, RewardTrainer

from reward.cache import EmbeddingCache, question_key, tower_fingerprint, video_key
from reward.dimensions import CANONICAL_DIMENSIONS, build_question
from reward.files import write_json
from reward.losses import bradley_terry_loss, center_rewards_penalty, rao_kupper_loss, score_regression_loss
from reward.pairs import PAIR_COLUMNS
from reward.video import VideoReadError, read_video

__all__ = [
    "LABEL_KEYS",
    "TIE_STATE_FILE",
    "CleveRewardTrainingConfig",
    "VideoPreferenceCollator",
    "VideoRewardTrainer",
]

logger = logging.getLogger(__name__)

TIE_STATE_FILE = "tie_threshold.json"
UINT8_MAX = 255
# Pair columns the trainer reads; the rest of a corpus's columns ride along untouched.
_REQUIRED_COLUMNS = ("prompt", "dimension", "chosen_video", "rejected_video", "margin", "tie")
# Keys the collator adds that are labels for the loss, not model inputs.
LABEL_KEYS = ("margin", "tie", "chosen_score", "rejected_score", "dimension_id", "pair_key", "num_skipped")
OBJECTIVES = ("pairwise", "regression")
_PAIR_KEY_BYTES = 8  # a 63-bit id: collisions among a corpus's pairs are negligible


def pair_key(row: dict[str, Any]) -> int:
    """A stable id of a pair row (its two videos, dimension and prompt), the same in every process.

    Evaluation under DDP drops the pairs accelerate repeats to even out the last batch by this key
    (Python's `hash` of a string differs between processes).
    """
    text = "\x1f".join(
        str(row[column]) for column in ("chosen_video", "rejected_video", "dimension", "prompt")
    )
    digest = hashlib.blake2b(text.encode(), digest_size=_PAIR_KEY_BYTES).digest()
    return int.from_bytes(digest, "little") >> 1  # fits int64


@dataclass
class CleveRewardTrainingConfig(RewardConfig):
    """`RewardConfig` plus what video preference training needs.

    Defaults that differ from TRL's: `remove_unused_columns=False` (video columns must reach the
    collator), `gradient_checkpointing=False` (the built-in towers are small; turn it on for big HF
    towers, where it trades ~20% speed for memory), `bf16=False` (CPU default; GPU recipes set it).
    """

    objective: str = field(
        default="pairwise",
        metadata={
            "help": "pairwise: Bradley–Terry on each pair (Rao–Kupper with ties, see tie_loss); regression: "
            "fit each video's reward to its normalised score (score_regression_loss; training pairs without "
            "scores, i.e. votes and A / B labels, are dropped).",
            "choices": list(OBJECTIVES),
        },
    )
    regression_scale: float = field(
        default=4.0,
        metadata={"help": "regression: reward units per unit of normalised score (targets in ±scale / 2)."},
    )
    tie_loss: bool = field(
        default=True,
        metadata={
            "help": "Train tie pairs with the Rao–Kupper likelihood (ties pull rewards together). When off, "
            "tie pairs are dropped from training (the count is logged) and strict pairs use Bradley–Terry."
        },
    )
    tie_nu_init: float = field(
        default=1.0,
        metadata={
            "help": "Initial Rao–Kupper ν = log θ > 0, in reward (logit) units: the half-width of the tie band."
        },
    )
    learn_tie_nu: bool = field(
        default=True, metadata={"help": "Learn ν with the model (else it stays at `tie_nu_init`)."}
    )
    use_margin: bool = field(
        default=True,
        metadata={
            "help": "Use each pair's `margin` column in the loss: −log σ(r_c − r_r − margin_scale · m)."
        },
    )
    margin_scale: float = field(
        default=1.0,
        metadata={"help": "Multiplies the corpus margin (in [0, 1] for normalised scores) to reward units."},
    )
    embedding_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the embedding cache. When a tower is frozen, each unique video / question is "
            "encoded once and its features are read from here afterwards (later epochs and later runs). "
            "None: no cache."
        },
    )
    keep_decoded_videos: bool = field(
        default=False,
        metadata={
            "help": "Keep decoded frames (uint8) in memory after the first epoch instead of decoding every epoch: "
            "num_frames × 3 × H × W bytes per video (98 KB at 8 × 64 × 64)."
        },
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={
            "help": "Threads for torch's CPU ops in this process (None: torch's default). 1 suits tiny models on "
            "few cores: their ops are too small to split, and a data-loader worker uses the other core."
        },
    )
    # Overridden defaults.
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the video columns: the collator reads them."}
    )
    # None, not False: transformers 5 renamed the field `activation_checkpointing` and warns whenever
    # the old name holds a value; None leaves both off (TRL's default is True).
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Recompute activations in backward to save memory (HF towers, conv tower blocks)."},
    )
    bf16: bool | None = field(
        default=False, metadata={"help": "bf16 mixed precision (GPU recipes); off for the CPU default."}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Unused for video pairs (questions are truncated by the model)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.torch_num_threads is not None:
            torch.set_num_threads(self.torch_num_threads)
        if self.tie_nu_init <= 0:
            raise ValueError(
                f"tie_nu_init must be > 0 (ν = 0 gives ties probability 0), got {self.tie_nu_init}"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.regression_scale <= 0:
            raise ValueError(f"regression_scale must be > 0, got {self.regression_scale}")


def _stack(videos: dict[str, torch.Tensor], paths: list[str]) -> torch.Tensor:
    """uint8 `[F, C, H, W]` frames of `paths` → float `[N, F, C, H, W]` in [0, 1] (one conversion per batch)."""
    return torch.stack([videos[p] for p in paths]).float().div_(UINT8_MAX)


@dataclass
class VideoPreferenceCollator:
    """Turns pair rows into one chosen-first batch for a reward model.

    For B readable pairs the model inputs hold 2B items: the B chosen videos first, then the B
    rejected ones, each asked its pair's question (`build_question(dimension, prompt,
    model.config.question_template)`); `model.build_inputs` makes the forward kwargs, and the loss
    splits the logits back with `torch.chunk(logits, 2)`. The batch also carries `margin [B]`,
    `tie [B]`, `dimension_id [B]` (index into CANONICAL_DIMENSIONS), `pair_key [B]` (`pair_key`) and `num_skipped` (pairs left
    out because a video could not be read; each file is named once in a warning and kept in
    `skipped`, path → reason).

    Videos are read with `read_video` at the model's `num_frames` and `frame_size`, relative to
    `video_root`; with `keep_decoded` their uint8 frames stay in memory for later epochs (in the
    process that collates: use `dataloader_persistent_workers` with workers). With an `EmbeddingCache` for a frozen tower of a dual encoder, cached videos /
    questions are neither read nor encoded again: the batch names every item by cache key
    (`video_keys [2B]`, `question_keys [Q]`) and carries pixels / tokens only for the misses
    (`missing_video_keys`, `missing_question_keys`); the trainer fills in the features.
    """

    model: nn.Module
    processing_class: Any
    video_root: str | Path
    video_cache: EmbeddingCache | None = None
    text_cache: EmbeddingCache | None = None
    keep_decoded: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    decoded: dict[str, torch.Tensor] = field(default_factory=dict)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        config = self.model.config
        pairs, videos, keys = [], {}, {}
        for row in rows:
            paths = [str(Path(self.video_root, row[column])) for column in ("chosen_video", "rejected_video")]
            try:
                for path in paths:
                    if path not in videos and path not in keys:
                        self._load(path, videos, keys)
            except VideoReadError as error:
                if error.path not in self.skipped:
                    logger.warning("skipping a pair with an unreadable video: %s", error)
                self.skipped[error.path] = error.reason
                continue
            pairs.append((row, paths))
        order = [paths[0] for _, paths in pairs] + [paths[1] for _, paths in pairs]  # chosen first
        questions = [
            build_question(row["dimension"], row["prompt"], config.question_template) for row, _ in pairs
        ]
        batch = self._model_inputs(order, questions + questions, videos, keys) if pairs else {}
        batch["margin"] = torch.tensor([float(row["margin"]) for row, _ in pairs], dtype=torch.float32)
        batch["tie"] = torch.tensor([bool(row["tie"]) for row, _ in pairs], dtype=torch.bool)
        for column in ("chosen_score", "rejected_score"):  # NaN where the pair has no scores
            batch[column] = torch.tensor(
                [float(row.get(column, math.nan)) for row, _ in pairs], dtype=torch.float32
            )
        batch["dimension_id"] = torch.tensor(
            [CANONICAL_DIMENSIONS.index(row["dimension"]) for row, _ in pairs], dtype=torch.long
        )
        batch["pair_key"] = torch.tensor([pair_key(row) for row, _ in pairs], dtype=torch.long)
        batch["num_skipped"] = torch.tensor(len(rows) - len(pairs))
        return batch

    def _load(self, path: str, videos: dict[str, torch.Tensor], keys: dict[str, str]) -> None:
        """Read `path` into `videos` (uint8 [F, C, H, W]) unless its features are cached."""
        if self.video_cache is not None:
            keys[path] = video_key(path) if Path(path).is_file() else path
            if keys[path] in self.video_cache:
                return
        frames = self.decoded.get(path)
        if frames is None:
            config = self.model.config
            frames = read_video(path, config.num_frames, size=tuple(config.frame_size))  # uint8 [F, C, H, W]
            if self.keep_decoded:
                self.decoded[path] = frames
        videos[path] = frames

    def _model_inputs(self, order, questions, videos, keys) -> dict[str, Any]:
        if self.video_cache is None and self.text_cache is None:
            return self.model.build_inputs(_stack(videos, order), questions, self.processing_class)
        # A dual encoder with a cached frozen tower: preprocess only what the cache lacks.
        batch: dict[str, Any] = {}
        unique = list(dict.fromkeys(questions))
        position = {q: i for i, q in enumerate(unique)}
        batch["text_index"] = torch.tensor([position[q] for q in questions])
        if self.video_cache is None:
            batch["pixel_values"] = self.model.preprocess_videos(_stack(videos, order))
        else:
            missing = [p for p in dict.fromkeys(order) if p in videos]
            batch["video_keys"] = [keys[p] for p in order]
            batch["missing_video_keys"] = [keys[p] for p in missing]
            if missing:
                batch["pixel_values"] = self.model.preprocess_videos(_stack(videos, missing))
        if self.text_cache is None:
            batch.update(self.model.tokenize(unique, self.processing_class))
        else:
            question_keys = [question_key(q) for q in unique]
            missing = [q for q, k in zip(unique, question_keys) if k not in self.text_cache]
            batch["question_keys"] = question_keys
            batch["missing_question_keys"] = [question_key(q) for q in missing]
            if missing:
                batch.update(self.model.tokenize(missing, self.processing_class))
        return batch


class VideoRewardTrainer(RewardTrainer):
    """TRL's `RewardTrainer` for video pairs (see the module docstring for what it overrides).

    `video_root` is the corpus's video folder (`Corpus.video_root`); it builds the default
    collator. The Rao–Kupper ν is held here (ν = softplus(raw) > 0), trained with the model when
    `learn_tie_nu`, and saved as `tie_threshold.json` next to the model and in checkpoints.
    """

    def __init__(
        self,
        model: nn.Module,
        args: CleveRewardTrainingConfig,
        train_dataset: datasets.Dataset,
        processing_class: Any,
        video_root: str | Path | None = None,
        eval_dataset: datasets.Dataset | dict[str, datasets.Dataset] | None = None,
        data_collator: Any = None,
        **kwargs,
    ):
        self.video_cache, self.text_cache = self._build_caches(model, args)
        if data_collator is None:
            if video_root is None:
                raise ValueError(
                    "VideoRewardTrainer needs `video_root` (the corpus's video folder) or a data_collator"
                )
            data_collator = VideoPreferenceCollator(
                model,
                processing_class,
                video_root,
                video_cache=self.video_cache,
                text_cache=self.text_cache,
                keep_decoded=args.keep_decoded_videos,
            )
        nu_raw = math.log(math.expm1(args.tie_nu_init))  # inverse softplus
        self.tie_nu_raw = nn.Parameter(
            torch.tensor(nu_raw, device=args.device), requires_grad=args.learn_tie_nu
        )
        self._dimension_stats: dict[str, dict[int, list[float]]] = {"train": {}, "eval": {}}
        self._eval_pairs_seen: set[int] = set()  # pair keys counted in the current evaluation
        self._skipped_pairs = 0
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            # TRL checks the pad token on a tokenizer; a VLM's processor holds one (`.tokenizer`).
            processing_class=getattr(processing_class, "tokenizer", processing_class),
            **kwargs,
        )
        self.processing_class = processing_class  # what save_model writes next to the model

    @staticmethod
    def _build_caches(model: nn.Module, args: CleveRewardTrainingConfig):
        if args.embedding_cache_dir is None or not hasattr(model, "video_features"):
            return None, None
        config = model.config
        preprocessing = {
            "num_frames": config.num_frames,
            "frame_size": config.frame_size,
            "image_mean": config.image_mean,
            "image_std": config.image_std,
            "max_text_length": config.max_text_length,
        }
        caches = []
        for part in ("video", "text"):
            if getattr(config, f"{part}_tower_mode") != "frozen":
                caches.append(None)
                continue
            tower = getattr(model, f"{part}_tower")
            caches.append(EmbeddingCache(args.embedding_cache_dir, tower_fingerprint(tower, preprocessing)))
        return tuple(caches)

    @property
    def tie_nu(self) -> torch.Tensor:
        """Rao–Kupper ν = softplus(raw) > 0."""
        return nn.functional.softplus(self.tie_nu_raw)

    # -- data ---------------------------------------------------------------------------------

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """Check the pair columns (no tokenisation: the collator reads videos); drop ties if the tie loss is off."""
        missing = [c for c in _REQUIRED_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"{dataset_name} dataset lacks pair columns {missing}; pairs need {list(_REQUIRED_COLUMNS)}"
            )
        unknown = sorted(set(dataset.unique("dimension")) - set(CANONICAL_DIMENSIONS))
        if unknown:
            raise ValueError(
                f"{dataset_name} dataset has unknown dimensions {unknown}; expected {CANONICAL_DIMENSIONS}"
            )
        if args.objective == "regression" and dataset_name == "train":
            scored = dataset.filter(
                lambda c, r: not (math.isnan(c) or math.isnan(r)),
                input_columns=["chosen_score", "rejected_score"],
            )
            logger.warning(
                "regression: training on the %d of %d pairs with scores", len(scored), len(dataset)
            )
            if len(scored) == 0:
                raise ValueError("objective 'regression' needs pairs with scores; the training set has none")
            return scored
        if not args.tie_loss:
            ties = sum(dataset["tie"])
            if ties:
                logger.warning("tie_loss is off: dropping %d tie pairs of the %s dataset", ties, dataset_name)
                dataset = dataset.filter(lambda tie: not tie, input_columns="tie")
        return dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = list(PAIR_COLUMNS)

    # -- optimisation -------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.args.tie_loss and self.args.learn_tie_nu:
            optimizer.add_param_group({"params": [self.tie_nu_raw], "weight_decay": 0.0})
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # ν is not inside the DDP-wrapped model: average its gradient across processes by hand.
        grad = self.tie_nu_raw.grad
        if grad is not None and self.accelerator.num_processes > 1:
            torch.distributed.all_reduce(grad)
            grad /= self.accelerator.num_processes
        return loss

    def _fill_cached_features(self, model: nn.Module, inputs: dict[str, Any]) -> None:
        """Swap cache keys in `inputs` for tower features, encoding (and caching) the misses."""
        model = self.accelerator.unwrap_model(model)
        if "video_keys" in inputs:
            keys, missing = inputs.pop("video_keys"), inputs.pop("missing_video_keys")
            if missing:
                with torch.no_grad():
                    self.video_cache.put(missing, model.video_features(inputs.pop("pixel_values")))
            self.video_cache.hits += len(keys) - len(missing)
            inputs["video_features"] = self.video_cache.get(keys, self.args.device)
        if "question_keys" in inputs:
            keys, missing = inputs.pop("question_keys"), inputs.pop("missing_question_keys")
            if missing:
                with torch.no_grad():
                    tokens = inputs.pop("input_ids"), inputs.pop("attention_mask")
                    self.text_cache.put(missing, model.text_features(*tokens))
            self.text_cache.hits += len(keys) - len(missing)
            inputs["text_features"] = self.text_cache.get(keys, self.args.device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Per-pair loss (`reward.losses`) averaged over the batch, plus TRL's reward-centering term.

        With `objective="regression"`, `score_regression_loss` on the pairs that have scores.
        Else Rao–Kupper when `tie_loss`, else Bradley–Terry; both use `margin_scale · margin` when
        `use_margin`. A batch whose pairs were all skipped gives a zero loss that still touches
        every trainable parameter (DDP expects a gradient for each).
        """
        mode = "train" if self.model.training else "eval"
        labels = {key: inputs.pop(key) for key in LABEL_KEYS}
        self._skipped_pairs += int(labels["num_skipped"])
        if labels["margin"].numel() == 0:
            loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
            empty = SequenceClassifierOutput(logits=torch.zeros(0, 1, device=self.args.device))
            return (loss, empty) if return_outputs else loss
        self._fill_cached_features(model, inputs)
        outputs = model(**inputs)
        chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        margin = labels["margin"] * self.args.margin_scale if self.args.use_margin else None
        if self.args.objective == "regression":
            per_pair = score_regression_loss(
                chosen, rejected, labels["chosen_score"], labels["rejected_score"], self.args.regression_scale
            )
        elif self.args.tie_loss:
            per_pair = rao_kupper_loss(chosen, rejected, labels["tie"], self.tie_nu, margin)
        else:
            per_pair = bradley_terry_loss(chosen, rejected, margin)
        if self.args.center_rewards_coefficient is not None:
            per_pair = per_pair + center_rewards_penalty(
                chosen, rejected, self.args.center_rewards_coefficient
            )
        if self.args.objective == "regression":  # evaluation pairs without scores (NaN): not fitted
            per_pair = per_pair[~per_pair.isnan()]
        loss = per_pair.mean() if per_pair.numel() else (chosen.sum() + rejected.sum()) * 0.0
        self._record_metrics(mode, chosen.detach(), rejected.detach(), labels)
        return (loss, outputs) if return_outputs else loss

    # -- metrics and saving -------------------------------------------------------------------

    def _record_metrics(self, mode: str, chosen, rejected, labels) -> None:
        """Accuracy (strict pairs) and mean reward gap, overall and per dimension, over all processes."""
        strict = ~labels["tie"]
        gap = chosen - rejected
        rows = torch.stack(
            [labels["dimension_id"].float(), strict.float(), (gap > 0).float(), gap], dim=1
        )  # [B, 4]
        # Processes may hold different numbers of pairs (skipped videos): pad with dimension −1, then drop.
        rows = self.accelerator.gather(self.accelerator.pad_across_processes(rows, dim=0, pad_index=-1))
        keep = (rows[:, 0] >= 0).tolist()
        if mode == "eval":
            # accelerate repeats the first pairs so every process gets a full last batch: count once.
            keys = self.accelerator.gather(
                self.accelerator.pad_across_processes(labels["pair_key"], dim=0, pad_index=-1)
            )  # [P * B'], aligned with rows
            for i, key in enumerate(keys.tolist()):
                if keep[i]:
                    keep[i] = key not in self._eval_pairs_seen
                    self._eval_pairs_seen.add(key)
        rows = rows[torch.tensor(keep, dtype=torch.bool, device=rows.device)]
        metrics = self._metrics[mode]
        metrics["mean_reward"].append(
            self.accelerator.gather(torch.cat([chosen, rejected]).mean()).mean().item()
        )
        stats = self._dimension_stats[mode]
        for dimension_id, is_strict, correct, gap_value in rows.tolist():
            entry = stats.setdefault(
                int(dimension_id), [0.0, 0.0, 0.0, 0.0]
            )  # correct, strict, gap sum, pairs
            entry[0] += correct * is_strict
            entry[1] += is_strict
            entry[2] += gap_value
            entry[3] += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        # Counted over pairs since the last log (not a mean of per-batch values, which would weigh
        # a short last batch like a full one).
        stats = self._dimension_stats[mode]
        for dimension_id, (correct, strict, gap_sum, pairs) in sorted(stats.items()):
            name = CANONICAL_DIMENSIONS[dimension_id]
            if strict:
                metrics[f"accuracy_{name}"] = [correct / strict]
            metrics[f"margin_{name}"] = [gap_sum / pairs]
        correct, strict, gap_sum, pairs = (sum(entry[k] for entry in stats.values()) for k in range(4))
        if strict:
            metrics["accuracy"] = [correct / strict]
        if pairs:
            metrics["margin"] = [gap_sum / pairs]
        metrics["pairs"] = [pairs]
        self._dimension_stats[mode] = {}
        if mode == "eval":
            self._eval_pairs_seen.clear()
        skipped = torch.tensor(self._skipped_pairs, device=self.args.device)
        metrics["skipped_pairs"] = [self.accelerator.reduce(skipped, "sum").item()]
        if self.args.tie_loss:
            metrics["tie_nu"] = [self.tie_nu.item()]
        for cache_name, cache in (
            ("video_cache_hits", self.video_cache),
            ("text_cache_hits", self.text_cache),
        ):
            if cache is not None:
                metrics[cache_name] = [cache.hits]
        super().log(logs, start_time)

    def train(self, *args, **kwargs):
        """`Trainer.train`, then the caches' last features go to disk (also after an interruption)."""
        try:
            return super().train(*args, **kwargs)
        finally:
            self._flush_caches()

    def _flush_caches(self) -> None:
        for cache in (self.video_cache, self.text_cache):
            if cache is not None:
                cache.flush()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model (and tokenizer, by the Trainer); with the tie loss, ν too; flush the caches."""
        super().save_model(output_dir, _internal_call)
        self._flush_caches()
        if self.args.tie_loss and self.args.should_save:
            write_json(Path(output_dir or self.args.output_dir, TIE_STATE_FILE), {"nu": self.tie_nu.item()})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        state = Path(resume_from_checkpoint, TIE_STATE_FILE)
        if state.is_file():
            nu = json.loads(state.read_text())["nu"]
            with torch.no_grad():
                self.tie_nu_raw.fill_(math.log(math.expm1(nu)))
