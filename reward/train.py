"""train a reward model (same as `accelerate launch -m reward.train`)

    accelerate launch -m reward.train --config configs/reward/synthetic.yaml
    python -m reward.train --config configs/reward/synthetic.yaml --max_steps 20
    clevereward train --config configs/reward/synthetic.yaml

Parse (ScriptArguments, CleveRewardTrainingConfig, ModelArguments) from a YAML `--config` and the
command line → load the pair corpus (rendering the synthetic world first with `--synthetic`) →
build the CleveReward dual encoder and its tokenizer → train with `VideoRewardTrainer` → save
model + tokenizer to `output_dir` → print per-dimension accuracy on the evaluation splits.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, set_seed
from transformers.trainer_utils import get_last_checkpoint
from trl import TrlParser

from reward.commands import config_parser
from reward.dimensions import CANONICAL_DIMENSIONS, build_question
from reward.files import write_json
from reward.hub import explain_missing_model
from reward.modeling import CleveRewardConfig, CleveRewardModel, user_fields
from reward.pairs import load_corpus
from reward.text import build_word_tokenizer
from reward.towers import BUILTIN_TEXT_TOWER
from reward.trainer import CleveRewardTrainingConfig, VideoRewardTrainer

__all__ = ["ScriptArguments", "ModelArguments", "build_model", "make_parser", "run", "main"]

SKIPPED_REPORT = "skipped_videos.json"


@dataclass
class ScriptArguments:
    """Where the pairs come from."""

    data_dir: str = field(
        default="data/synthetic", metadata={"help": "Pair corpus folder (reward.pairs layout)."}
    )
    synthetic: bool = field(
        default=False,
        metadata={"help": "Render the synthetic world into `data_dir` first when it holds no corpus yet."},
    )
    synthetic_pairs_per_dimension: int = field(
        default=600, metadata={"help": "Synthetic pairs per dimension, over all splits (with --synthetic)."}
    )
    synthetic_alignment_factor: int = field(
        default=4,
        metadata={"help": "text_alignment gets this many times more synthetic pairs (the hard one)."},
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of the synthetic world."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str | None = field(
        default="validation", metadata={"help": "Split evaluated during training (None: no evaluation)."}
    )
    final_eval_splits: list[str] = field(
        default_factory=lambda: ["validation"],
        metadata={"help": "Splits evaluated after training; per-dimension accuracy is printed for each."},
    )
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "Train on the first N pairs only (quick runs, tests)."}
    )


@dataclass
class _ModelChoice:
    """Which reward model: a saved one to continue from, or a VLM backbone; the VLM's own options."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved CleveReward folder to continue from; None builds a new model."},
    )
    # VLM reward models (reward.vlm): set vlm_name_or_path to train one instead of the dual encoder.
    vlm_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A Qwen2-VL-family checkpoint (hub id such as Qwen/Qwen2-VL-2B-Instruct, or a folder), or a "
            "saved VLM reward model to continue from: trains a VLM with a score head instead of the dual encoder."
        },
    )
    vlm_tuning: str = field(
        default="lora", metadata={"help": "VLM: 'lora' (adapters + score head) or 'full'."}
    )
    vlm_lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "VLM: regex or comma-separated module names for LoRA (default: the LLM's linears)."
        },
    )
    vlm_train_vision: bool = field(default=False, metadata={"help": "VLM: LoRA on the vision tower too."})
    vlm_reward_token: str | None = field(
        default=None,
        metadata={
            "help": "VLM: a new token appended to each prompt whose hidden state the head reads "
            "(default: the last prompt token)."
        },
    )
    vlm_dtype: str | None = field(
        default=None, metadata={"help": "VLM: weights dtype (bfloat16 on GPU; also the 4-bit compute dtype)."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "VLM: QLoRA, NF4 4-bit backbone (bitsandbytes, CUDA)."}
    )
    load_in_8bit: bool = field(default=False, metadata={"help": "VLM: 8-bit backbone (bitsandbytes, CUDA)."})
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "VLM: sdpa | flash_attention_2 | eager (default: transformers' choice)."},
    )


# The dual encoder's options are the user-set fields of `CleveRewardConfig` (defaults and help
# strings included), so they are written once, where the model reads them.
ModelArguments = dataclasses.make_dataclass(
    "ModelArguments",
    [(f.name, f.type, field(default=f.default, metadata=f.metadata)) for f in user_fields()],
    bases=(_ModelChoice,),
)
ModelArguments.__module__ = __name__
ModelArguments.__doc__ = (
    "The reward model: a saved one to continue from, a VLM backbone, or the towers and preprocessing "
    "of a new dual encoder (the fields of `CleveRewardConfig` that a user sets)."
)


def build_model(
    model_args: ModelArguments, questions: list[str], dimensions: list[str], trust_remote_code: bool = False
) -> tuple[CleveRewardModel, object]:
    """A new CleveReward model and its tokenizer, or the saved ones at `model_name_or_path`.

    The built-in text tower gets a word tokenizer over `questions`; an HF text tower its own
    tokenizer (with eos as pad when it has no pad token). With `vlm_name_or_path`: a VLM reward
    model and its processor (`reward.vlm.build_vlm_reward_model`).
    """
    if model_args.vlm_name_or_path is not None:
        from reward.vlm import build_vlm_reward_model  # the VLM stack loads only when asked

        return build_vlm_reward_model(model_args, dimensions, trust_remote_code)
    if model_args.model_name_or_path is not None:
        path = model_args.model_name_or_path
        return CleveRewardModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    if model_args.text_tower == BUILTIN_TEXT_TOWER:
        tokenizer = build_word_tokenizer(questions, model_args.question_template, model_args.max_text_length)
    else:
        with explain_missing_model(model_args.text_tower, "text tower"):
            tokenizer = AutoTokenizer.from_pretrained(
                model_args.text_tower, trust_remote_code=trust_remote_code
            )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    fields = {f.name: getattr(model_args, f.name) for f in user_fields()}
    config = CleveRewardConfig(**fields, vocab_size=len(tokenizer), dimensions=dimensions)
    return CleveRewardModel.from_towers(config, trust_remote_code=trust_remote_code), tokenizer


def _prepare_corpus(args: ScriptArguments):
    if args.synthetic and not Path(args.data_dir, "corpus.json").is_file():
        from reward.synthetic import build_synthetic_corpus

        build_synthetic_corpus(
            args.data_dir,
            args.synthetic_pairs_per_dimension,
            args.synthetic_seed,
            args.synthetic_alignment_factor,
        )
    return load_corpus(args.data_dir)


def _accuracy_table(split: str, metrics: dict[str, float]) -> str:
    lines = [f"{split}: pairwise accuracy", f"  {'dimension':<22}{'accuracy':>9}{'margin':>9}"]
    for dimension in CANONICAL_DIMENSIONS:
        if f"eval_accuracy_{dimension}" in metrics:
            accuracy, margin = metrics[f"eval_accuracy_{dimension}"], metrics[f"eval_margin_{dimension}"]
            lines.append(f"  {dimension:<22}{accuracy:>9.3f}{margin:>9.2f}")
    lines.append(f"  {'all':<22}{metrics.get('eval_accuracy', float('nan')):>9.3f}")
    return "\n".join(lines)


def make_parser() -> TrlParser:
    """The command line / YAML parser of (ScriptArguments, CleveRewardTrainingConfig, ModelArguments)."""
    return config_parser(ScriptArguments, CleveRewardTrainingConfig, ModelArguments)


def run(
    script_args: ScriptArguments, training_args: CleveRewardTrainingConfig, model_args: ModelArguments
) -> tuple[VideoRewardTrainer, dict[str, dict[str, float]]]:
    """Load the corpus, build, train, save, evaluate: the trainer and the metrics per final split."""
    corpus = _prepare_corpus(script_args)
    train_dataset = corpus.pairs[script_args.train_split]
    if script_args.max_train_pairs is not None:
        train_dataset = train_dataset.select(range(min(script_args.max_train_pairs, len(train_dataset))))
    dimensions = sorted(set(train_dataset["dimension"]), key=CANONICAL_DIMENSIONS.index)
    questions = [
        build_question(d, p, model_args.question_template)
        for d, p in zip(train_dataset["dimension"], train_dataset["prompt"])
    ]
    # The Trainer seeds only after it is given the model: seed here so the initial weights of the
    # towers trained from scratch (and the heads) are the same in every run of a config.
    set_seed(training_args.seed)
    model, tokenizer = build_model(model_args, questions, dimensions, training_args.trust_remote_code)

    eval_dataset = corpus.pairs[script_args.eval_split] if script_args.eval_split else None
    if eval_dataset is None:
        training_args.eval_strategy = "no"
    trainer = VideoRewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )
    resume = training_args.resume_from_checkpoint
    if resume == "last":
        resume = get_last_checkpoint(training_args.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    if model_args.vlm_name_or_path is not None and trainer.accelerator.is_main_process:
        from reward.vlm import save_vlm_reward_model

        # LoRA merged into the weights next to the processor, the adapter under adapter/.
        save_vlm_reward_model(
            trainer.accelerator.unwrap_model(trainer.model), tokenizer, training_args.output_dir
        )
    skipped = trainer.data_collator.skipped
    if trainer.accelerator.is_main_process:
        write_json(Path(training_args.output_dir, SKIPPED_REPORT), skipped)
    trainer.accelerator.print(
        f"saved to {training_args.output_dir}; skipped {len(skipped)} unreadable videos"
    )
    # Evaluate splits by name: the Trainer keeps one data loader per name (with persistent workers
    # it would otherwise reuse the first split's loader for every dataset passed in). Prepared like
    # the datasets the trainer was given (columns checked, ties dropped when the tie loss is off).
    trainer.eval_dataset = {
        split: trainer._prepare_dataset(corpus.pairs[split], tokenizer, training_args, split)
        for split in script_args.final_eval_splits
    }
    results = {}
    for split in script_args.final_eval_splits:
        results[split] = trainer.evaluate(split)
        trainer.accelerator.print(_accuracy_table(split, results[split]))
    return trainer, results


def main(argv: list[str] | None = None) -> int:
    trainer, _ = run(*make_parser().parse_args_and_config(args=argv))
    # Ranks reach the end at different times; gloo's group teardown can hang unless they meet first.
    trainer.accelerator.wait_for_everyone()
    trainer.end()  # finish the trackers and the process group
    if "wandb" in trainer.args.report_to:
        import wandb

        wandb.finish()  # transformers leaves its run open for later evaluations; close it (flushes offline runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
