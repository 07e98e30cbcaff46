"""The CleveReward dual encoder (reward/modeling.py, reward/towers.py, reward/text.py): tiny models, offline."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    CLIPTextConfig,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    T5Config,
    VideoMAEConfig,
)

from reward.dimensions import build_question
from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.synthetic import draw_scene, render_scene
from reward.text import build_word_tokenizer
from reward.towers import FrameImageTower, HFTextTower, VideoBackboneTower, text_pooling_for

CAPTIONS = ["a red circle moving left", "a blue square moving up", "a green triangle moving down"]
FRAMES, SIZE = 4, 32  # tiny clips: 4 frames of 32 x 32
# Tiny backbone sizes: hidden 32, one layer, 4 heads (8-dim heads), 37-wide MLP (odd on purpose).
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 37}


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(CAPTIONS)


def tiny_config(tokenizer, **overrides) -> CleveRewardConfig:
    fields = {
        "vocab_size": len(tokenizer),
        "conv_channels": [8, 16],
        "word_embedding_dim": 16,
        "text_hidden_size": 32,
        "projection_dim": 16,
        "num_frames": FRAMES,
        "frame_size": [SIZE, SIZE],
        "dimensions": ["visual_quality", "text_alignment"],
    }
    return CleveRewardConfig(**{**fields, **overrides})


def videos(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def questions(n: int) -> list[str]:
    return [build_question("text_alignment", CAPTIONS[i % len(CAPTIONS)]) for i in range(n)]


def test_forward_scores_chosen_first_batch_and_swapping_swaps_logits(tokenizer):
    torch.manual_seed(0)
    model = CleveRewardModel(tiny_config(tokenizer)).eval()
    chosen, rejected = videos(3, seed=1), videos(3, seed=2)
    asked = questions(3)
    logits = model(**model.build_inputs(torch.cat([chosen, rejected]), asked + asked, tokenizer)).logits
    assert logits.shape == (6, 1)
    swapped = model(**model.build_inputs(torch.cat([rejected, chosen]), asked + asked, tokenizer)).logits
    torch.testing.assert_close(swapped, torch.cat([logits[3:], logits[:3]]))


def test_build_inputs_tokenises_each_unique_question_once(tokenizer):
    model = CleveRewardModel(tiny_config(tokenizer))
    asked = questions(2) * 2
    inputs = model.build_inputs(videos(4), asked, tokenizer)
    assert inputs["pixel_values"].shape == (4, FRAMES, 3, SIZE, SIZE)
    assert inputs["input_ids"].shape[0] == 2
    assert inputs["text_index"].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="2 videos but 3 questions"):
        model.build_inputs(videos(2), questions(3), tokenizer)


def test_preprocessing_samples_frames_and_resizes_to_the_config():
    tokenizer = build_word_tokenizer(CAPTIONS)
    model = CleveRewardModel(tiny_config(tokenizer))
    big = torch.full((2, 9, 3, 48, 40), 0.5)
    pixels = model.preprocess_videos(big)
    assert pixels.shape == (2, FRAMES, 3, SIZE, SIZE)
    torch.testing.assert_close(pixels, torch.zeros_like(pixels))  # (0.5 - mean 0.5) / std 0.5


def test_score_questions_encodes_each_video_once_and_matches_forward(tokenizer):
    torch.manual_seed(0)
    model = CleveRewardModel(tiny_config(tokenizer)).eval()
    calls = []
    model.video_tower.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    clips = videos(2)
    asked = [questions(3), list(reversed(questions(3)))]
    with torch.no_grad():
        scores = model.score_questions(clips, asked, tokenizer)
        assert scores.shape == (2, 3) and calls == [2]
        direct = model(**model.build_inputs(clips[[1]], [asked[1][2]], tokenizer)).logits
    torch.testing.assert_close(scores[1, 2], direct[0, 0])


def test_temperature_is_learned_and_clamped(tokenizer):
    model = CleveRewardModel(tiny_config(tokenizer, logit_scale_init=10.0, logit_scale_max=20.0))
    assert model.temperature.item() == pytest.approx(10.0)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # e^10 would exceed the clamp
    assert model.temperature.item() == pytest.approx(20.0)
    logits = model(**model.build_inputs(videos(2), questions(2), tokenizer)).logits
    assert logits.abs().max() <= 20.0 + 1e-4


def test_save_and_load_round_trip_with_tokenizer(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = CleveRewardModel(tiny_config(tokenizer)).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, CleveRewardModel)
    assert loaded.config.num_frames == FRAMES and loaded.config.frame_size == [SIZE, SIZE]
    assert loaded.config.dimensions == ["visual_quality", "text_alignment"]
    clips, asked = videos(3), questions(3)
    with torch.no_grad():
        before = model(**model.build_inputs(clips, asked, tokenizer)).logits
        after = loaded(**loaded.build_inputs(clips, asked, loaded_tokenizer)).logits
    torch.testing.assert_close(before, after)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_labels == 1"):
        CleveRewardConfig(num_labels=2)
    with pytest.raises(ValueError, match="video_tower_mode"):
        CleveRewardConfig(video_tower_mode="half")
    with pytest.raises(ValueError, match="from_towers"):
        CleveRewardModel(CleveRewardConfig(video_tower="openai/clip-vit-base-patch32"))


def test_tower_modes_set_requires_grad(tokenizer):
    model = CleveRewardModel(tiny_config(tokenizer, video_tower_mode="frozen", text_tower_mode="lora"))
    assert not any(p.requires_grad for p in model.video_tower.parameters())
    text = dict(model.text_tower.named_parameters())
    assert any("lora_" in n for n in text)
    assert all(p.requires_grad == ("lora_" in n) for n, p in text.items())
    for part in (model.video_projection, model.text_projection):
        assert all(p.requires_grad for p in part.parameters())
    assert model.logit_scale.requires_grad
    model.train()
    assert not model.video_tower.training and model.text_tower.training  # frozen towers stay in eval mode
    full = CleveRewardModel(tiny_config(tokenizer))
    assert all(p.requires_grad for p in full.parameters())


def tiny_hf_towers(vocab_size: int) -> dict[str, tuple[str, dict]]:
    return {
        "clip_vision": ("video", CLIPVisionConfig(**TINY, image_size=SIZE, patch_size=8).to_dict()),
        "videomae": (
            "video",
            VideoMAEConfig(
                **TINY, image_size=SIZE, patch_size=8, num_frames=FRAMES, tubelet_size=2
            ).to_dict(),
        ),
        "t5": (
            "text",
            T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4).to_dict(),
        ),
        "clip_text": ("text", CLIPTextConfig(**TINY, vocab_size=vocab_size).to_dict()),
        "bert": ("text", BertConfig(**TINY, vocab_size=vocab_size).to_dict()),
        "llama": ("text", LlamaConfig(**TINY, vocab_size=vocab_size, num_key_value_heads=2).to_dict()),
    }


@pytest.mark.parametrize("name", ["clip_vision", "videomae", "t5", "clip_text", "bert", "llama"])
def test_hf_towers_from_tiny_configs_run_forward_and_round_trip(name, tmp_path, tokenizer):
    torch.manual_seed(0)
    part, backbone = tiny_hf_towers(len(tokenizer))[name]
    config = tiny_config(tokenizer, **{f"{part}_tower": f"tiny-{name}", f"{part}_tower_config": backbone})
    model = CleveRewardModel(config).eval()
    expected = {"clip_vision": FrameImageTower, "videomae": VideoBackboneTower}.get(name, HFTextTower)
    assert isinstance(getattr(model, f"{part}_tower"), expected)
    if name == "llama":
        assert model.text_tower.pooling == "last"
    elif part == "text":
        assert model.text_tower.pooling == "mean"
    inputs = model.build_inputs(videos(4), questions(4), tokenizer)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        reloaded = CleveRewardModel.from_pretrained(tmp_path).eval()(**inputs).logits
    torch.testing.assert_close(logits, reloaded)


def test_last_token_pooling_ignores_padding_on_either_side():
    torch.manual_seed(0)
    backbone = AutoModel.from_config(LlamaConfig(**TINY, vocab_size=16, num_key_value_heads=2))
    tower = HFTextTower(backbone, "last").eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        alone = tower(ids, torch.ones_like(ids))
        right = tower(torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]]))
    torch.testing.assert_close(alone, right, atol=1e-5, rtol=1e-5)
    assert text_pooling_for(backbone.config) == "last"


def test_image_tower_with_temporal_transformer_and_lora(tokenizer):
    part, backbone = tiny_hf_towers(len(tokenizer))["clip_vision"]
    config = tiny_config(
        tokenizer,
        video_tower="tiny-clip",
        video_tower_config=backbone,
        temporal_pooling="transformer",
        video_tower_mode="lora",
        lora_target_modules="q_proj,v_proj",
    )
    model = CleveRewardModel(config)
    trainable = {n for n, p in model.video_tower.named_parameters() if p.requires_grad}
    # LoRA adapters in the backbone, plus the new temporal layer around it; the backbone's own weights stay.
    assert any("lora_" in n for n in trainable) and "frame_positions" in trainable
    assert all("lora_" in n or not n.startswith("backbone.") for n in trainable)
    assert model(**model.build_inputs(videos(2), questions(2), tokenizer)).logits.shape == (2, 1)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_from_towers_loads_pretrained_backbone_weights(tmp_path, tokenizer, mode):
    torch.manual_seed(0)
    backbone = CLIPVisionModel(CLIPVisionConfig(**TINY, image_size=SIZE, patch_size=8))
    backbone.save_pretrained(tmp_path / "clip")
    config = tiny_config(tokenizer, video_tower=str(tmp_path / "clip"), video_tower_mode=mode)
    model = CleveRewardModel.from_towers(config)
    assert model.config.video_tower_config["model_type"] == "clip_vision_model"
    assert model.config.video_tower_mode == mode
    loaded = model.video_tower.backbone.state_dict()
    for name, weight in backbone.state_dict().items():
        # LoRA wraps an adapted linear: its pretrained weight moves under `base_layer`.
        key = (
            name
            if name in loaded
            else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        )
        torch.testing.assert_close(loaded[key], weight)
    assert any("lora_" in n for n in loaded) == (mode == "lora")


def test_shape_branch_sees_shape_not_color(tokenizer):
    """The conv tower's shape branch gives one feature for a scene drawn in two colors; the stem does not."""
    shape_channels = 8
    model = CleveRewardModel(tiny_config(tokenizer, shape_channels=shape_channels)).eval()
    scene = draw_scene("a red triangle moving left", np.random.default_rng(0))
    renders = [render_scene(replace(scene, color=c)) for c in ("red", "blue")]
    renders.append(render_scene(replace(scene, shape="square")))
    videos = model.preprocess_videos(torch.stack(renders).float() / 255)  # [3, F, C, H, W]
    with torch.no_grad():
        features = model.video_tower(videos)  # [3, hidden]; the shape branch's pooled features come last
    stem_width = 2 * model.config.conv_channels[0]
    shape = features[:, -2 * shape_channels :]
    # Equal up to uint8 rounding of the anti-aliased edges, which differs per color.
    torch.testing.assert_close(shape[0], shape[1], atol=1e-2, rtol=0)
    assert (shape[0] - shape[2]).abs().max() > 10 * (shape[0] - shape[1]).abs().max()  # another shape
    assert (features[0, :stem_width] - features[1, :stem_width]).abs().max() > 0.1  # the stem sees color
