"""VLM reward models (reward.vlm) and token budgets (reward.budget) on a tiny local Qwen2-VL.

The backbone is a real `Qwen2VLForConditionalGeneration` built from a tiny config with a locally
trained byte-level BPE tokenizer (`build_tiny_qwen2_vl`), written to disk and loaded back through
`VLMRewardModel.from_backbone`, the same path a hub id takes. Nothing is downloaded.
"""

import json

import pytest
import torch
from peft import PeftModel

from reward.budget import (
    BudgetSetting,
    VisionGeometry,
    default_grid,
    settings_within,
    sweep_budget,
    video_tokens,
    vision_geometry,
)
from reward.dimensions import build_question
from reward.scoring import load_scorer
from reward.vlm import (
    LANGUAGE_LORA_TARGETS,
    QWEN2_VL_CHAT_TEMPLATE,
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    TensorQwen2VLProcessor,
    TensorVideoProcessor,
    VLMRewardConfig,
    VLMRewardModel,
    build_tiny_qwen2_vl,
    load_vlm_processor,
    lora_config,
    merge_adapters,
    prepare_for_training,
    quantization_config,
)

NUM_FRAMES = 4
FRAME_SIZE = [32, 32]  # 2 × 2 merged tokens per frame pair at the tiny 8-pixel patches
QUESTION = build_question("visual_quality", "a red circle moving left")
LONG_QUESTION = build_question(
    "temporal_consistency", "a yellow triangle moving down and then some more words"
)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"), seed=0)


@pytest.fixture
def processor(backbone_dir):
    return load_vlm_processor(backbone_dir)


@pytest.fixture
def model(backbone_dir):
    torch.manual_seed(0)
    return VLMRewardModel.from_backbone(
        str(backbone_dir), num_frames=NUM_FRAMES, frame_size=FRAME_SIZE, dimensions=["visual_quality"]
    ).eval()


def videos(n: int, seed: int = 0) -> torch.Tensor:
    """float [n, 8, 3, 64, 64] in [0, 1]: the model samples 4 frames and resizes to 32 × 32."""
    return torch.rand(n, 8, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


# -- processing ----------------------------------------------------------------------------------


def test_video_processor_patch_layout_by_hand():
    processor = TensorVideoProcessor(
        patch_size=2,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=16,
        max_pixels=64,
        image_mean=[0] * 3,
        image_std=[1] * 3,
    )
    video = torch.arange(4 * 3 * 4 * 4, dtype=torch.float32).view(4, 3, 4, 4)  # [F, C, H, W]
    out = processor(videos=[video], do_rescale=False)
    assert out["video_grid_thw"].tolist() == [[2, 2, 2]]  # (4 / 2) temporal × (4 / 2) × (4 / 2) patches
    patches = out["pixel_values_videos"]
    assert patches.shape == (8, 3 * 2 * 2 * 2)
    # Patch 1 is the second 2×2 patch of the first merge block: rows 0-1, columns 2-3, frames 0-1,
    # flattened as [C, t, p, p].
    expected = video[0:2, :, 0:2, 2:4].permute(1, 0, 2, 3).flatten()  # [t, C, p, p] -> [C, t, p, p]
    assert torch.equal(patches[1], expected)
    # Patch 4 opens the second temporal group: frames 2-3, rows 0-1, columns 0-1.
    assert torch.equal(patches[4], video[2:4, :, 0:2, 0:2].permute(1, 0, 2, 3).flatten())


def test_video_processor_matches_transformers():
    pytest.importorskip("torchvision")  # transformers' video processors need it
    from transformers import Qwen2VLVideoProcessor

    settings = dict(patch_size=8, temporal_patch_size=2, merge_size=2, min_pixels=256, max_pixels=128 * 128)
    frames = (torch.rand(4, 3, 32, 48) * 255).to(torch.uint8)
    ours = TensorVideoProcessor(**settings)(videos=[frames])
    theirs = Qwen2VLVideoProcessor(**settings)(videos=[frames], return_tensors="pt")
    assert torch.equal(ours["video_grid_thw"], theirs["video_grid_thw"])
    torch.testing.assert_close(ours["pixel_values_videos"], theirs["pixel_values_videos"], atol=1e-4, rtol=0)


def test_processor_round_trip_keeps_settings(backbone_dir, tmp_path, processor):
    assert isinstance(processor, TensorQwen2VLProcessor)
    assert processor.chat_template == QWEN2_VL_CHAT_TEMPLATE
    processor.save_pretrained(tmp_path)
    again = load_vlm_processor(tmp_path)
    for name in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels"):
        assert getattr(again.video_processor, name) == getattr(processor.video_processor, name)
    assert again.tokenizer.get_vocab() == processor.tokenizer.get_vocab()


def test_build_inputs_chat_template_and_order(model, processor):
    batch = videos(3)
    inputs = model.build_inputs(batch, [QUESTION, LONG_QUESTION, QUESTION], processor)
    tokens = video_tokens(NUM_FRAMES, *FRAME_SIZE, vision_geometry(processor))
    video_pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]] * 3  # 4 frames / 2, 32 px / 8 px
    assert ((inputs["input_ids"] == video_pad).sum(-1) == tokens).all()
    assert ((inputs["mm_token_type_ids"] == 2).sum(-1) == tokens).all()  # 2 = video
    assert inputs["pixel_values_videos"].shape[0] == 3 * tokens * 4  # merge 2 × 2 patches per token
    text = processor.tokenizer.decode(inputs["input_ids"][1][inputs["attention_mask"][1].bool()])
    assert text.startswith("<|im_start|>system") and LONG_QUESTION in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    # Item order is kept: the second item's patches are the second video's alone.
    alone = model.build_inputs(batch[1:2], [LONG_QUESTION], processor)
    per_video = inputs["pixel_values_videos"].shape[0] // 3
    assert torch.equal(inputs["pixel_values_videos"][per_video : 2 * per_video], alone["pixel_values_videos"])


def test_build_inputs_rejects_mismatched_counts(model, processor):
    with pytest.raises(ValueError, match="2 videos but 1 questions"):
        model.build_inputs(videos(2), [QUESTION], processor)


@torch.no_grad()
def test_swapping_chosen_and_rejected_swaps_logits(model, processor):
    pair = videos(2, seed=1)
    logits = model(**model.build_inputs(pair, [QUESTION, QUESTION], processor)).logits.squeeze(-1)
    swapped = model(**model.build_inputs(pair.flip(0), [QUESTION, QUESTION], processor)).logits.squeeze(-1)
    assert logits.shape == (2,)
    assert not torch.allclose(logits[0], logits[1])  # the two videos do score differently
    torch.testing.assert_close(swapped, logits.flip(0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
@torch.no_grad()
def test_padding_side_reads_the_same_token(model, processor, side):
    processor.tokenizer.padding_side = side
    batch = videos(2, seed=2)
    together = model(**model.build_inputs(batch, [QUESTION, LONG_QUESTION], processor)).logits
    alone = torch.cat(
        [
            model(**model.build_inputs(batch[i : i + 1], [q], processor)).logits
            for i, q in enumerate([QUESTION, LONG_QUESTION])
        ]
    )
    padded = model.build_inputs(batch, [QUESTION, LONG_QUESTION], processor)["attention_mask"]
    assert (padded == 0).any()  # the short question really is padded
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_reward_token_is_added_and_read(backbone_dir, processor):
    torch.manual_seed(0)
    model = VLMRewardModel.from_backbone(
        str(backbone_dir), num_frames=NUM_FRAMES, frame_size=FRAME_SIZE, reward_token="<|reward|>"
    ).eval()
    token_id = model.add_reward_token(processor)
    assert model.get_input_embeddings().weight.shape[0] == len(processor.tokenizer)
    inputs = model.build_inputs(videos(2), [QUESTION, LONG_QUESTION], processor)
    positions = model.reward_positions(inputs["input_ids"], inputs["attention_mask"])
    assert (inputs["input_ids"].gather(1, positions[:, None]) == token_id).all()
    without = inputs["input_ids"].masked_fill(inputs["input_ids"] == token_id, 0)
    with pytest.raises(ValueError, match="no reward token"):
        model.reward_positions(without, inputs["attention_mask"])


def test_config_defaults_and_checks():
    config = VLMRewardConfig()
    assert config.num_labels == 1 and config.vlm_config.model_type == "qwen2_vl"
    with pytest.raises(ValueError, match="num_labels == 1"):
        VLMRewardConfig(num_labels=2)
    with pytest.raises(ValueError, match="height, width"):
        VLMRewardConfig(frame_size=[32])


def test_save_load_and_scorer_match_the_model(model, processor, tmp_path):
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "clevereward_vlm"
    batch, prompts = (
        videos(3, seed=3),
        ["a red circle moving left", "a blue square moving up", "a green circle moving down"],
    )
    with torch.no_grad():
        expected = model.score_questions(
            batch, [[build_question("visual_quality", p)] for p in prompts], processor
        )
    scorer = load_scorer(tmp_path, device="cpu")
    assert isinstance(scorer.model, VLMRewardModel)
    assert scorer.model.config.frame_size == FRAME_SIZE and scorer.model.config.num_frames == NUM_FRAMES
    scores = scorer.score(batch, prompts, "visual_quality")
    assert scores.shape == (3,) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected[:, 0], atol=1e-5, rtol=1e-5)
    # dimension=None: the mean over config.dimensions (here just visual_quality).
    torch.testing.assert_close(scorer.score(batch, prompts), scores)


@torch.no_grad()
def test_score_questions_matches_forward_per_item(model, processor):
    batch = videos(2, seed=4)
    questions = [[QUESTION, LONG_QUESTION], [LONG_QUESTION, QUESTION]]
    rewards = model.score_questions(batch, questions, processor)
    assert rewards.shape == (2, 2)
    for b in range(2):
        for k in range(2):
            single = model(**model.build_inputs(batch[b : b + 1], [questions[b][k]], processor)).logits
            torch.testing.assert_close(rewards[b, k], single[0, 0], atol=1e-5, rtol=1e-4)


# -- LoRA / QLoRA ----------------------------------------------------------------------------------


def test_quantization_config_fields():
    assert quantization_config() is None
    four = quantization_config(load_in_4bit=True)
    assert four.load_in_4bit and not four.load_in_8bit
    assert four.bnb_4bit_quant_type == "nf4"
    assert four.bnb_4bit_use_double_quant is True
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert four.llm_int8_skip_modules == ["score", "visual"]
    eight = quantization_config(load_in_8bit=True)
    assert (
        eight.load_in_8bit and not eight.load_in_4bit and eight.llm_int8_skip_modules == ["score", "visual"]
    )
    with pytest.raises(ValueError, match="exclude each other"):
        quantization_config(load_in_4bit=True, load_in_8bit=True)


def test_lora_config_fields():
    config = lora_config(r=4, alpha=8, dropout=0.1)
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, 8, 0.1)
    assert config.target_modules == LANGUAGE_LORA_TARGETS
    assert config.modules_to_save == ["score"] and config.trainable_token_indices is None
    assert "visual" in lora_config(train_vision=True).target_modules
    assert set(lora_config(target_modules="q_proj, v_proj").target_modules) == {"q_proj", "v_proj"}
    assert lora_config(trainable_token_ids=[7]).trainable_token_indices == {"embed_tokens": [7]}


@pytest.mark.parametrize("train_vision", [False, True])
def test_lora_adapts_the_right_modules_and_trains(model, processor, train_vision):
    peft_model = prepare_for_training(model, lora_config(r=4, alpha=8, train_vision=train_vision))
    assert isinstance(peft_model, PeftModel)
    assert model.is_gradient_checkpointing
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    lora = [name for name in trainable if "lora_" in name]
    assert lora and all("language_model" in n or (train_vision and "visual" in n) for n in lora)
    assert any("visual" in n for n in lora) == train_vision
    assert [n for n in trainable if "lora_" not in n] == [
        "base_model.model.score.modules_to_save.default.weight"
    ]
    # One step: the loss backpropagates through checkpointed layers into the adapters and the head.
    peft_model.train()
    inputs = model.build_inputs(videos(2, seed=5), [QUESTION, QUESTION], processor)
    chosen, rejected = peft_model(**inputs).logits.squeeze(-1).chunk(2)
    (-torch.nn.functional.logsigmoid(chosen - rejected)).mean().backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n or "score" in n)


@torch.no_grad()
def test_merge_adapters_keeps_the_scores(model, processor):
    peft_model = prepare_for_training(model, lora_config(r=4, alpha=8), gradient_checkpointing=False).eval()
    for name, param in peft_model.named_parameters():
        if "lora_B" in name or "modules_to_save" in name:
            param.add_(0.05 * torch.randn_like(param))  # as if trained: adapters and head now matter
    inputs = model.build_inputs(videos(2, seed=6), [QUESTION, LONG_QUESTION], processor)
    expected = peft_model(**inputs).logits
    merged = merge_adapters(peft_model)
    assert isinstance(merged, VLMRewardModel)
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-5, rtol=1e-4)


def test_qlora_loads_in_4bit_and_trains(backbone_dir):
    # bitsandbytes (>= 0.50) runs 4-bit layers on CPU too, so the QLoRA path is tested everywhere.
    import bitsandbytes as bnb

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = VLMRewardModel.from_backbone(
        str(backbone_dir),
        quantization=quantization_config(load_in_4bit=True),
        dtype=torch.bfloat16,
        num_frames=NUM_FRAMES,
        frame_size=FRAME_SIZE,
    ).to(device)
    assert model.is_loaded_in_4bit
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.vlm.language_model.modules())
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.vlm.visual.modules())
    assert model.score.weight.dtype == torch.float32
    peft_model = prepare_for_training(model, lora_config(r=4, alpha=8))
    processor = load_vlm_processor(backbone_dir)
    inputs = model.build_inputs(videos(2), [QUESTION, QUESTION], processor)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    chosen, rejected = peft_model(**inputs).logits.squeeze(-1).chunk(2)
    (-torch.nn.functional.logsigmoid(chosen - rejected)).mean().backward()
    assert all(p.grad is not None for p in peft_model.parameters() if p.requires_grad)


# -- training through the shared trainer ------------------------------------------------------------


def dimension_pairs(corpus_dir, split: str, dimension: str):
    from reward.pairs import load_corpus

    corpus = load_corpus(corpus_dir)
    return corpus, corpus.pairs[split].filter(lambda d: d == dimension, input_columns="dimension")


def training_args(tmp_path, **overrides):
    from reward.trainer import CleveRewardTrainingConfig

    settings = dict(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        tie_loss=False,  # the synthetic world has no ties: plain Bradley–Terry
        use_margin=False,
        seed=0,
        keep_decoded_videos=True,
    )
    return CleveRewardTrainingConfig(**{**settings, **overrides})


def test_trainer_updates_every_parameter_and_fits_a_batch(
    backbone_dir, synthetic_corpus_dir, tmp_path, processor
):
    from reward.trainer import LABEL_KEYS, VideoPreferenceCollator, VideoRewardTrainer

    corpus, train = dimension_pairs(synthetic_corpus_dir, "train", "dynamic_degree")
    pairs = train.select([0] * 4) if len(train) < 4 else train.select(range(4))  # one batch, every step
    torch.manual_seed(0)
    model = VLMRewardModel.from_backbone(
        str(backbone_dir), num_frames=NUM_FRAMES, frame_size=FRAME_SIZE, dimensions=["dynamic_degree"]
    )
    batch = VideoPreferenceCollator(model, processor, corpus.video_root)([pairs[i] for i in range(4)])
    inputs = {k: v for k, v in batch.items() if k not in LABEL_KEYS}

    def batch_loss() -> float:  # −log σ(r_chosen − r_rejected), averaged over the 4 pairs
        with torch.no_grad():
            chosen, rejected = model(**inputs).logits.squeeze(-1).chunk(2)
        return (-torch.nn.functional.logsigmoid(chosen - rejected)).mean().item()

    before_loss = batch_loss()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = VideoRewardTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=8),
        train_dataset=pairs,
        processing_class=processor,
        video_root=corpus.video_root,
    )
    trainer.train()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []  # full tuning: vision tower, merger, LLM and head all train
    assert batch_loss() < before_loss - 0.05
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 8 and logged[0] == pytest.approx(before_loss, abs=1e-4)


def test_regression_objective_fits_a_vlm_to_scores(backbone_dir, synthetic_corpus_dir, tmp_path, processor):
    """objective: regression through the same trainer: the VLM's rewards move to s (y - 1/2)."""
    from reward.trainer import LABEL_KEYS, VideoPreferenceCollator, VideoRewardTrainer

    corpus, train = dimension_pairs(synthetic_corpus_dir, "train", "dynamic_degree")
    pairs = (train.select([0] * 4) if len(train) < 4 else train.select(range(4))).map(
        lambda row: {"chosen_score": 1.0, "rejected_score": 0.0}
    )
    torch.manual_seed(0)
    model = VLMRewardModel.from_backbone(
        str(backbone_dir), num_frames=NUM_FRAMES, frame_size=FRAME_SIZE, dimensions=["dynamic_degree"]
    )
    batch = VideoPreferenceCollator(model, processor, corpus.video_root)([pairs[i] for i in range(4)])
    inputs = {k: v for k, v in batch.items() if k not in LABEL_KEYS}

    def error() -> float:  # mean squared distance of the rewards to their targets +2 / -2
        with torch.no_grad():
            chosen, rejected = model(**inputs).logits.squeeze(-1).chunk(2)
        return (((chosen - 2) ** 2 + (rejected + 2) ** 2) / 2).mean().item()

    before = error()
    args = training_args(tmp_path, max_steps=8, objective="regression", regression_scale=4.0)
    trainer = VideoRewardTrainer(
        model=model, args=args, train_dataset=pairs, processing_class=processor, video_root=corpus.video_root
    )
    trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert logged[0] == pytest.approx(before, abs=1e-4)  # the loss trained is this regression error
    assert error() < before - 0.1


def test_train_entry_point_trains_lora_and_saves_a_scorable_model(
    backbone_dir, synthetic_corpus_dir, tmp_path
):
    from reward.train import main

    out = tmp_path / "vlm-run"
    argv = [
        "--data_dir", str(synthetic_corpus_dir), "--vlm_name_or_path", str(backbone_dir),
        "--num_frames", str(NUM_FRAMES), "--frame_size", *map(str, FRAME_SIZE),
        "--lora_r", "4", "--lora_alpha", "8", "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "2", "--eval_strategy", "no", "--final_eval_splits", "validation",
        "--save_strategy", "no", "--report_to", "none", "--tie_loss", "false", "--learning_rate", "0.001",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "adapter_config.json").exists()
    scorer = load_scorer(out, device="cpu")
    assert isinstance(scorer.model, VLMRewardModel)
    assert not any("lora_" in name for name, _ in scorer.model.named_parameters())
    assert sorted(scorer.dimensions) == sorted(
        ["visual_quality", "temporal_consistency", "dynamic_degree", "text_alignment"]
    )
    scores = scorer.score(
        videos(2), ["a red circle moving left", "a blue square moving up"], "dynamic_degree"
    )
    assert scores.shape == (2,) and torch.isfinite(scores).all()


@pytest.mark.parametrize(
    "config", ["configs/reward/qwen2vl-2b-lora.yaml", "configs/reward/qwen2vl-7b-qlora.yaml"]
)
def test_recipes_parse(config):
    from pathlib import Path

    from trl import TrlParser

    from reward.train import ModelArguments, ScriptArguments
    from reward.trainer import CleveRewardTrainingConfig

    path = Path(__file__).parents[1] / config
    parser = TrlParser((ScriptArguments, CleveRewardTrainingConfig, ModelArguments))
    # bf16 is for the GPU these recipes target; this CPU check turns it off.
    _, args, model_args = parser.parse_args_and_config(
        ["--config", str(path), "--bf16", "false", "--report_to", "none"]
    )
    assert model_args.vlm_name_or_path.startswith("Qwen/Qwen2-VL-")
    assert args.gradient_checkpointing
    size = model_args.frame_size
    assert video_tokens(model_args.num_frames, size[0], size[1], QWEN2_VL) in (1024, 2048)
    assert model_args.load_in_4bit == ("qlora" in config)


@pytest.mark.slow
def test_training_raises_held_out_accuracy(backbone_dir, tmp_path_factory, tmp_path, processor):
    """dynamic_degree (a frozen object vs. a moving one) on unseen color–shape captions."""
    from reward.evaluate import evaluate_corpus
    from reward.scoring import Scorer
    from reward.synthetic import build_synthetic_corpus
    from reward.trainer import VideoRewardTrainer

    corpus_dir = build_synthetic_corpus(
        tmp_path_factory.mktemp("corpus"), pairs_per_dimension=64, seed=0, num_workers=1
    )
    corpus, train = dimension_pairs(corpus_dir, "train", "dynamic_degree")
    _, test = dimension_pairs(corpus_dir, "test", "dynamic_degree")
    corpus.pairs = {"test": test}
    torch.manual_seed(0)
    model = VLMRewardModel.from_backbone(
        str(backbone_dir), num_frames=NUM_FRAMES, frame_size=FRAME_SIZE, dimensions=["dynamic_degree"]
    )

    def accuracy() -> float:
        report = evaluate_corpus(
            Scorer(model, processor, batch_size=16), corpus, "test", tie_threshold=0.0, progress=False
        )
        return report["overall"]["accuracy"]

    before = accuracy()
    model.train()
    args = training_args(tmp_path, max_steps=60, per_device_train_batch_size=8, learning_rate=3e-4)
    trainer = VideoRewardTrainer(
        model=model, args=args, train_dataset=train, processing_class=processor, video_root=corpus.video_root
    )
    trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert sum(logged[-10:]) / 10 < 0.5 < sum(logged[:5]) / 5  # from log 2 ≈ 0.69 down
    after = accuracy()
    assert after > max(before, 0.65), (before, after)


# -- token budgets -----------------------------------------------------------------------------------

QWEN2_VL = VisionGeometry(patch_size=14, temporal_patch_size=2, merge_size=2)


def test_video_tokens_by_hand():
    assert QWEN2_VL.factor == 28
    assert video_tokens(16, 448, 448, QWEN2_VL) == 8 * 16 * 16  # 2048
    assert video_tokens(8, 224, 336, QWEN2_VL) == 4 * 8 * 12  # 384
    assert video_tokens(3, 28, 28, QWEN2_VL) == 2  # an odd frame count is padded to a temporal pair
    with pytest.raises(ValueError, match="multiples of patch_size"):
        video_tokens(8, 100, 100, QWEN2_VL)


def test_geometry_comes_from_processor_and_config(model, processor):
    from_processor = vision_geometry(processor)
    # the processor also knows its pixel bounds, which no model config holds
    assert from_processor == VisionGeometry(
        patch_size=8,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
    )
    bare = VisionGeometry(patch_size=8, temporal_patch_size=2, merge_size=2)
    assert bare == vision_geometry(model.config) == vision_geometry(model.config.vlm_config)
    with pytest.raises(ValueError, match="token budgets apply to VLM"):
        vision_geometry(object())


def test_settings_within_budget():
    settings = settings_within(512, QWEN2_VL, frame_options=[2, 4, 8], size_options=[224, 448])
    assert BudgetSetting(8, 224, 256) in settings and BudgetSetting(2, 448, 256) in settings
    assert all(s.tokens <= 512 for s in settings)
    assert BudgetSetting(8, 448, 1024) not in settings


GEOMETRY = VisionGeometry(patch_size=8, temporal_patch_size=2, merge_size=2)  # 16 px per merged token
FRAMES, SIZES = [2, 4, 8, 16], [16, 32, 64, 128]


def saturating_accuracy(frames_saturate_at: int, calls: list):
    """A deterministic accuracy surface: + 0.05 per doubling of frames up to `frames_saturate_at`,
    + 0.04 per doubling of size. Under a budget the two compete; the grid's optimum is known."""
    import math

    def evaluate(f: int, s: int) -> float:
        calls.append((f, s))
        return round(0.05 * math.log2(min(f, frames_saturate_at)) + 0.04 * math.log2(s / 16), 6)

    return evaluate


@pytest.mark.parametrize(
    "saturate_at, path, best",
    [
        # Frames keep paying: 2 → 4 → 8 frames at 128 px (8 at 128 px = 256 tokens, the budget), then
        # 64 px buys 16 frames (128 tokens) and wins; 32 px buys no more frames than 16, so it is passed over.
        (16, [("frames", 2, 128), ("frames", 4, 128), ("frames", 8, 128), ("resolution", 16, 64)], (16, 64)),
        # Frames stop paying at 4: the frame phase stops at the first non-rise (8 frames), and trading
        # 128 px for 16 frames at 64 px loses, which ends the sweep.
        (4, [("frames", 2, 128), ("frames", 4, 128), ("frames", 8, 128), ("resolution", 16, 64)], (4, 128)),
    ],
)
def test_sweep_follows_the_procedure_and_finds_the_optimum(saturate_at, path, best):
    calls: list = []
    evaluate = saturating_accuracy(saturate_at, calls)
    sweep = sweep_budget(256, evaluate, GEOMETRY, FRAMES, SIZES)
    assert [(t.phase, t.setting.num_frames, t.setting.size) for t in sweep.trials] == path
    assert (sweep.best.num_frames, sweep.best.size) == best
    assert sweep.best.tokens == video_tokens(best[0], best[1], best[1], GEOMETRY)
    assert all(t.setting.tokens <= 256 for t in sweep.trials)
    assert len(calls) == len(set(calls)) == len(sweep.trials)  # nothing evaluated twice
    grid = settings_within(256, GEOMETRY, FRAMES, SIZES)
    assert len(calls) < len(grid)  # cheaper than the full grid ...
    oracle = max(saturating_accuracy(saturate_at, [])(s.num_frames, s.size) for s in grid)
    assert sweep.best_accuracy == oracle  # ... and as good


def test_sweep_rejects_impossible_budgets_and_bad_grids():
    with pytest.raises(ValueError, match="no setting fits a budget of 0"):
        sweep_budget(0, saturating_accuracy(4, []), GEOMETRY, FRAMES, SIZES)
    with pytest.raises(ValueError, match=r"bad: \[3\]"):
        sweep_budget(256, saturating_accuracy(4, []), GEOMETRY, [2, 3], SIZES)
    with pytest.raises(ValueError, match=r"bad: \[20\]"):
        sweep_budget(256, saturating_accuracy(4, []), GEOMETRY, FRAMES, [16, 20])


def test_eval_sweep_budget_command(model, processor, synthetic_corpus_dir, tmp_path, capsys):
    from reward.commands.evaluate import main

    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "sweep"
    argv = ["--model", str(tmp_path / "model"), "--data", str(synthetic_corpus_dir), "--split", "test"]
    assert main([*argv, "--out", str(out), "--sweep-budget", "8", "--device", "cpu", "--no-progress"]) == 0
    sweep = json.loads((out / "budget_sweep.json").read_text())
    # Budget 8 at 16 px per merged token: 2 frames at 32 px cost 4 tokens, 4 frames 8; 16 px frames cost 1 per pair.
    assert sweep["trials"][0]["setting"] == {"num_frames": 2, "size": 32, "tokens": 4}
    assert all(t["setting"]["tokens"] <= 8 for t in sweep["trials"])
    assert sweep["best"] in [t["setting"] for t in sweep["trials"]]
    assert "<- best" in capsys.readouterr().out


def test_default_grid_follows_the_geometry():
    frames, sizes = default_grid(QWEN2_VL, [448, 448])
    assert frames == [2, 4, 8, 16, 32]
    assert sizes[0] == 28 and sizes[-1] == 448 and len(sizes) == 16
