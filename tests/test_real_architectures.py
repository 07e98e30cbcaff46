"""The claimed backbones at their real published widths (depth cut to two blocks, random weights).

Each config below copies the values of the checkpoint's published `config.json` (and, where the
preprocessing matters, `preprocessor_config.json`); the source is named beside it. Only the
number of layers is cut, so widths, heads, patch sizes, frame counts and flags are the real ones.
"""

import pytest
import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    SiglipVisionConfig,
    T5Config,
    VideoMAEConfig,
)

from align.cogvideox import default_video_size, tiny_pipeline
from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.text import build_word_tokenizer

LAYERS = 2  # every other value is the checkpoint's

# The ViT-B/16 shape that CLIP ViT-B/16, SigLIP base/16 and VideoMAE base share (each config.json below)
VIT_B16 = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=LAYERS,
               image_size=224, patch_size=16)  # fmt: skip
# huggingface.co/openai/clip-vit-base-patch16, config.json "vision_config"
CLIP_VIT_B16 = dict(**VIT_B16, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512)
# ... and its preprocessor_config.json
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
# huggingface.co/google/siglip-base-patch16-224, config.json "vision_config"
SIGLIP_B16 = dict(**VIT_B16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
# huggingface.co/MCG-NJU/videomae-base, config.json
VIDEOMAE_BASE = dict(**VIT_B16, num_frames=16, tubelet_size=2, qkv_bias=True, use_mean_pooling=False,
                     hidden_act="gelu", layer_norm_eps=1e-12)  # fmt: skip
# huggingface.co/google/t5-v1_1-base, config.json (the encoder; vocabulary cut to the test's words)
T5_V11_BASE = dict(
    d_model=768,
    d_ff=2048,
    d_kv=64,
    num_heads=12,
    num_layers=LAYERS,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
    layer_norm_epsilon=1e-6,
    tie_word_embeddings=False,
)
# THUDM/CogVideoX1.5-5B, transformer/config.json (the values diffusers' conversion writes for 1.5)
COGVIDEOX15_TRANSFORMER = dict(attention_head_dim=64, num_attention_heads=48, in_channels=16, out_channels=16,
                               num_layers=42, patch_size=2, patch_size_t=2, sample_frames=81, sample_height=300,
                               sample_width=300, text_embed_dim=4096, time_embed_dim=512, max_text_seq_length=226,
                               use_rotary_positional_embeddings=True, patch_bias=False,
                               spatial_interpolation_scale=1.875, temporal_compression_ratio=4)  # fmt: skip
CAPTIONS = ["a red circle moving left", "a blue square moving up"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(CAPTIONS)


def dual_encoder(tokenizer, **fields) -> CleveRewardModel:
    torch.manual_seed(0)
    config = CleveRewardConfig(
        vocab_size=len(tokenizer), projection_dim=32, dimensions=["text_alignment"], **fields
    )
    return CleveRewardModel(config)


def pair_batch(model, tokenizer, frames: int) -> dict:
    size = model.config.frame_size
    videos = torch.rand(2, frames, 3, *size, generator=torch.Generator().manual_seed(0))  # [chosen; rejected]
    return model.build_inputs(
        videos, [f"rate the text alignment of a video of {c}" for c in CAPTIONS], tokenizer
    )


def test_clip_recipe_lora_targets_all_receive_gradients(tokenizer):
    """configs/reward/clip-t5-videocross.yaml: LoRA q/k/v/out_proj on CLIP ViT-B/16 plus a temporal transformer.

    Before the fix the adapter on the temporal layer's `self_attn.out_proj` never got a gradient:
    `nn.MultiheadAttention` uses that weight directly, not through the (adapted) module.
    """
    model = dual_encoder(
        tokenizer, video_tower="openai/clip-vit-base-patch16", video_tower_config=CLIPVisionConfig(**CLIP_VIT_B16).to_dict(),
        video_tower_mode="lora", lora_r=16, lora_alpha=32, lora_target_modules="q_proj,k_proj,v_proj,out_proj",
        temporal_pooling="transformer", num_frames=4,
    )  # fmt: skip
    assert model.config.frame_size == [224, 224]  # from the backbone's image_size, not the synthetic 64
    logits = model(**pair_batch(model, tokenizer, frames=4)).logits  # [2, 1]
    (logits[0] - logits[1]).sum().backward()
    trainable = {n: p for n, p in model.video_tower.named_parameters() if p.requires_grad}
    dead = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert any("lora_" in n for n in trainable) and not dead, dead


@pytest.mark.parametrize("name, backbone", [("siglip", SiglipVisionConfig(**SIGLIP_B16)), ("t5", None)])
def test_real_width_towers_score_a_pair(tokenizer, name, backbone):
    if name == "siglip":
        fields = {
            "video_tower": "google/siglip-base-patch16-224",
            "video_tower_config": backbone.to_dict(),
            "num_frames": 2,
        }
    else:  # T5 v1.1 as a frozen text tower beside the built-in video tower
        t5 = T5Config(vocab_size=len(tokenizer), **T5_V11_BASE)
        fields = {"text_tower": "google/t5-v1_1-base", "text_tower_config": t5.to_dict(), "text_tower_mode": "frozen", "num_frames": 2}  # fmt: skip
    model = dual_encoder(tokenizer, **fields).eval()
    with torch.no_grad():
        logits = model(**pair_batch(model, tokenizer, frames=2)).logits
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


def test_videomae_needs_its_frame_count_and_says_so(tokenizer):
    config = VideoMAEConfig(**VIDEOMAE_BASE).to_dict()
    with pytest.raises(ValueError, match=r"num_frames=8 does not fit video tower .*set num_frames: 16"):
        dual_encoder(tokenizer, video_tower="MCG-NJU/videomae-base", video_tower_config=config, num_frames=8)
    with pytest.raises(
        ValueError, match=r"frame_size=\[112, 112\] does not fit .*set frame_size: \[224, 224\]"
    ):
        dual_encoder(tokenizer, video_tower="MCG-NJU/videomae-base", video_tower_config=config, num_frames=16,
                     frame_size=[112, 112])  # fmt: skip
    model = dual_encoder(
        tokenizer, video_tower="MCG-NJU/videomae-base", video_tower_config=config, num_frames=16
    ).eval()
    with torch.no_grad():
        assert model(**pair_batch(model, tokenizer, frames=16)).logits.shape == (2, 1)


def test_from_towers_takes_the_backbone_processor_statistics(tokenizer, tmp_path):
    """A pretrained folder with CLIP's preprocessor_config.json: its mean / std, not 0.5."""
    small = {
        **CLIP_VIT_B16,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "image_size": 32,
    }
    CLIPVisionModel(CLIPVisionConfig(**small)).save_pretrained(tmp_path)
    CLIPImageProcessor(image_mean=CLIP_MEAN, image_std=CLIP_STD, crop_size=32, size=32).save_pretrained(
        tmp_path
    )
    config = CleveRewardConfig(
        vocab_size=len(tokenizer), video_tower=str(tmp_path), num_frames=2, dimensions=["text_alignment"]
    )
    model = CleveRewardModel.from_towers(config)
    assert model.config.frame_size == [32, 32]
    assert model.config.image_mean == pytest.approx(CLIP_MEAN) and model.config.image_std == pytest.approx(
        CLIP_STD
    )
    # a user's own values win
    mine = CleveRewardConfig(
        vocab_size=len(tokenizer), video_tower=str(tmp_path), num_frames=2, image_mean=[0.4] * 3
    )
    assert CleveRewardModel.from_towers(mine).config.image_mean == [0.4] * 3


def test_cogvideox15_samples_at_its_model_card_size_not_its_rope_grid():
    """1.5's sample_height / sample_width (300) are its RoPE grid's base: x 8 they would be 2400 x 2400."""
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    with torch.device("meta"):  # the real config, one block, no memory
        transformer = CogVideoXTransformer3DModel.from_config({**COGVIDEOX15_TRANSFORMER, "num_layers": 1})
    tiny = tiny_pipeline()
    pipe = CogVideoXPipeline(tokenizer=tiny.tokenizer, text_encoder=tiny.text_encoder, vae=tiny.vae,
                             transformer=transformer, scheduler=tiny.scheduler)  # fmt: skip
    assert default_video_size(pipe) == (
        2400,
        2400,
        81,
    )  # what the config alone says: what generate used to do
    pipe.register_to_config(
        _name_or_path="THUDM/CogVideoX1.5-5B"
    )  # as from_pretrained("THUDM/CogVideoX1.5-5B")
    assert default_video_size(pipe) == (768, 1360, 81)  # the model card's 1360 x 768, 81 frames


# huggingface.co/Qwen/Qwen2-VL-2B-Instruct, preprocessor_config.json (7B's is the same)
QWEN2_VL_PREPROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                         "merge_size": 2, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
                         "image_processor_type": "Qwen2VLImageProcessor"}  # fmt: skip


@pytest.fixture(scope="module")
def qwen2_vl_processor(tmp_path_factory):
    """A folder laid out like the Qwen2-VL-2B checkpoint's processor files: its preprocessor_config.json
    and no video settings (the tokenizer is the tiny one's; only the video geometry matters here)."""
    import json
    import shutil

    from reward.vlm import build_tiny_qwen2_vl, load_vlm_processor

    tiny = build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny") / "qwen2-vl")
    folder = tmp_path_factory.mktemp("qwen2-vl-2b-processor")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny / name, folder / name)
    (folder / "preprocessor_config.json").write_text(json.dumps(QWEN2_VL_PREPROCESSOR))
    return load_vlm_processor(folder)


def _video_prompt(processor, frames: int, size: int):
    """A chat-templated (random video, question) through `processor`: (inputs, visual tokens emitted)."""
    video = torch.randint(0, 256, (frames, 3, size, size), dtype=torch.uint8)
    text = processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "rate it"}]}]],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    inputs = processor(text=text, videos=[video], return_tensors="pt")
    return inputs, int(
        (inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum()
    )


@pytest.mark.parametrize("frames, size", [(4, 112), (4, 28), (2, 448), (8, 224)])
def test_qwen2_vl_visual_tokens_match_the_budget(qwen2_vl_processor, frames, size):
    """Before: the torch-only processor used its own 100,352-pixel floor, so 4 frames at 112 px emitted
    288 tokens where the budget said 32; and sizes under the checkpoint's floor (28 px) were miscounted."""
    from reward.budget import processed_size, video_tokens, vision_geometry

    processor = qwen2_vl_processor
    geometry = vision_geometry(processor)
    assert (geometry.patch_size, geometry.merge_size, geometry.min_pixels) == (14, 2, 3136)
    inputs, emitted = _video_prompt(processor, frames, size)
    assert emitted == video_tokens(frames, size, size, geometry)
    if size == 28:  # below the floor: resized up to 56 x 56, which the budget now counts
        assert processed_size(size, size, geometry) == (56, 56) and emitted == 2 * 2 * 2  # 2 temporal x 2 x 2


# (height, width) of a frame: on the 28-px grid (no resize), and off it (resized to 56 x 84 and 28 x 196)
_ON_GRID, _OFF_GRID = [(56, 84), (112, 112)], [(60, 90), (30, 200)]


@pytest.mark.parametrize("size", _ON_GRID + _OFF_GRID)
def test_qwen2_vl_patches_match_transformers_own_preprocessing(size):
    """Pixel by pixel against transformers' Qwen2-VL preprocessing with the checkpoint's settings. Its
    video processor needs torchvision, whose only wheel here is built for CUDA torch and does not
    import beside the CPU build (its _C.so links libtorch_cuda.so), so the reference is transformers'
    Qwen2VLImageProcessorPil: a still image is a video of repeated frames, so frames (f0, f0, f1, f1)
    must give exactly its patches of f0 then f1 (same grid, resize target, normalisation and patch
    order). Off the grid the resize kernels differ (PIL's bicubic on uint8, ours antialiased on
    floats): the same grid, and a mean difference under 0.01 in normalised units."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from reward.vlm import TensorVideoProcessor

    settings = {k: v for k, v in QWEN2_VL_PREPROCESSOR.items() if k != "image_processor_type"}
    reference, ours = Qwen2VLImageProcessorPil(**settings), TensorVideoProcessor(**settings)
    generator = torch.Generator().manual_seed(0)
    stills = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8, generator=generator)  # f0, f1
    expected = reference(images=[f.numpy() for f in stills], return_tensors="pt")
    video = stills.repeat_interleave(2, dim=0)  # [f0, f0, f1, f1]
    got = ours(videos=[video], return_tensors="pt")
    grid_t, grid_h, grid_w = got["video_grid_thw"][0].tolist()
    assert grid_t == 2 and expected["image_grid_thw"].tolist() == [[1, grid_h, grid_w]] * 2
    difference = (got["pixel_values_videos"] - expected["pixel_values"]).abs()
    if size in _ON_GRID:
        assert difference.max() < 1e-5
    else:
        assert difference.mean() < 0.01


# config.json of Qwen/Qwen2-VL-{2B,7B}-Instruct and Qwen/Qwen2.5-VL-{3B,7B}-Instruct (text and vision
# parts), at two decoder and two vision blocks. The 7B models untie their output embedding and have
# 152,064 vocabulary rows; Qwen2.5-VL's context is 128,000 positions.
_QWEN_7B_TEXT = dict(
    vocab_size=152064,
    tie_word_embeddings=False,
    hidden_size=3584,
    intermediate_size=18944,
    num_attention_heads=28,
    num_key_value_heads=4,
)
_QWEN25_VL_VISION = dict(
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,
    hidden_act="silu",
    in_channels=3,
)
QWEN_VL = {
    "qwen2-vl-2b": dict(
        text=dict(vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768, hidden_size=1536,
                  intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2),
        vision=dict(embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, in_chans=3),
    ),
    "qwen2.5-vl-3b": dict(
        text=dict(vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=128000, hidden_size=2048,
                  intermediate_size=11008, num_attention_heads=16, num_key_value_heads=2),
        vision=dict(**_QWEN25_VL_VISION, out_hidden_size=2048),
    ),
    "qwen2-vl-7b": dict(
        text=dict(**_QWEN_7B_TEXT, max_position_embeddings=32768),
        vision=dict(embed_dim=1280, hidden_size=3584, mlp_ratio=4, num_heads=16, in_chans=3),
    ),
    "qwen2.5-vl-7b": dict(
        text=dict(**_QWEN_7B_TEXT, max_position_embeddings=128000),
        vision=dict(**_QWEN25_VL_VISION, out_hidden_size=3584),
    ),
}  # fmt: skip


def qwen_vl_config(name, tokenizer):
    """The model's published config at two blocks. The special-token ids are the test tokenizer's (the
    real tokenizer needs the hub); every width, head count and flag is the checkpoint's."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    ids = tokenizer.convert_tokens_to_ids
    config_class = Qwen2VLConfig if name.startswith("qwen2-") else Qwen2_5_VLConfig
    text = QWEN_VL[name]["text"]
    return config_class(
        text_config=dict(
            num_hidden_layers=LAYERS, rms_norm_eps=1e-6, hidden_act="silu", use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
            **text,
        ),
        vision_config=dict(depth=LAYERS, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           **QWEN_VL[name]["vision"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=text["tie_word_embeddings"],
    )  # fmt: skip


def _train_one_vlm_step(recipe: str, backbone, tmp_path, size: int, *overrides: str) -> None:
    """One LoRA step of `recipe` on the synthetic world with the backbone folder (2 frames of size², fp32,
    eager; `overrides` come last, so they win)."""
    from reward import train as reward_train

    argv = ["--config", recipe, "--vlm_name_or_path", str(backbone),
            "--data_dir", str(tmp_path / "data"), "--synthetic", "true", "--synthetic_pairs_per_dimension", "3",
            "--synthetic_alignment_factor", "1", "--num_frames", "2", "--frame_size", str(size), str(size),
            "--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--bf16", "false", "--vlm_dtype", "float32", "--attn_implementation", "eager", "--report_to", "none",
            "--eval_strategy", "no", "--save_strategy", "no", "--dataloader_num_workers", "0",
            "--final_eval_splits", "validation", "--output_dir", str(tmp_path / "model"), *overrides]  # fmt: skip
    assert reward_train.main(argv) == 0  # bf16 is for GPUs; everything else is the recipe's


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2-vl-2b", "qwen2.5-vl-3b"])
def test_qwen_vl_trains_one_step_with_the_2b_recipe_and_scores(name, qwen2_vl_processor, tmp_path):
    """configs/reward/qwen2vl-2b-lora.yaml on the real widths: LoRA on the language model, one optimizer
    step, saved, reloaded by load_scorer; the video costs the budget's token count."""
    from transformers import AutoModelForImageTextToText

    from reward.budget import video_tokens, vision_geometry
    from reward.scoring import load_scorer

    torch.manual_seed(0)
    backbone = tmp_path / f"{name}-2-blocks"
    config = qwen_vl_config(name, qwen2_vl_processor.tokenizer)
    AutoModelForImageTextToText.from_config(config).save_pretrained(backbone)
    qwen2_vl_processor.save_pretrained(backbone)
    _train_one_vlm_step("configs/reward/qwen2vl-2b-lora.yaml", backbone, tmp_path, 56)
    scorer = load_scorer(tmp_path / "model", device="cpu")
    assert scorer.model.config.num_frames == 2
    videos = torch.rand(2, 2, 3, 56, 56)
    scores = scorer(videos, ["a red circle moving left"] * 2, "text_alignment")
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert video_tokens(2, 56, 56, vision_geometry(scorer.processing_class)) == 4  # 1 temporal x 2 x 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2-vl-7b", "qwen2.5-vl-7b"])
def test_qwen_vl_7b_trains_one_qlora_step_with_its_recipe_and_scores_merged(
    name, qwen2_vl_processor, tmp_path
):
    """configs/reward/qwen2vl-7b-qlora.yaml on the 7B widths (NF4 language model, bf16 compute on the CPU):
    one optimizer step keeps only the adapter; merged into the unquantised backbone as docs/vlm.md shows,
    it scores through load_scorer."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from reward.scoring import load_scorer
    from reward.vlm import ADAPTER_FOLDER, VLMRewardModel, merge_adapters

    torch.manual_seed(0)
    backbone = tmp_path / f"{name}-2-blocks"
    config = qwen_vl_config(name, qwen2_vl_processor.tokenizer)
    AutoModelForImageTextToText.from_config(config).to(torch.bfloat16).save_pretrained(backbone)
    qwen2_vl_processor.save_pretrained(backbone)
    _train_one_vlm_step("configs/reward/qwen2vl-7b-qlora.yaml", backbone, tmp_path, 56,
                        "--use_cpu", "true", "--bf16", "true", "--vlm_dtype", "bfloat16")  # fmt: skip
    adapter = tmp_path / "model" / ADAPTER_FOLDER
    assert (adapter / "adapter_model.safetensors").is_file()
    base = VLMRewardModel.from_backbone(str(backbone), dtype="float32", num_frames=2, frame_size=[56, 56])
    merged = merge_adapters(PeftModel.from_pretrained(base, str(adapter)))
    merged.save_pretrained(tmp_path / "merged")
    qwen2_vl_processor.save_pretrained(tmp_path / "merged")
    scorer = load_scorer(tmp_path / "merged", device="cpu")
    scores = scorer(torch.rand(2, 2, 3, 56, 56), ["a red circle moving left"] * 2, "text_alignment")
    assert scores.shape == (2,) and torch.isfinite(scores).all()


# huggingface.co/Qwen/Qwen3-VL-2B-Instruct, video_preprocessor_config.json (4B's and 8B's are the same)
QWEN3_VL_VIDEO_PREPROCESSOR = {"size": {"longest_edge": 25165824, "shortest_edge": 4096}, "patch_size": 16,
                               "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                               "image_std": [0.5, 0.5, 0.5], "fps": 2, "processor_class": "Qwen3VLProcessor",
                               "video_processor_type": "Qwen3VLVideoProcessor"}  # fmt: skip


@pytest.fixture(scope="module")
def qwen3_vl_processor(tmp_path_factory):
    """A folder laid out like the Qwen3-VL-2B checkpoint's processor files (its video_preprocessor_config.json;
    the tokenizer and chat template are the tiny one's: only the video geometry and the prompt layout matter)."""
    import json
    import shutil

    from reward.vlm import build_tiny_qwen3_vl, load_vlm_processor

    tiny = build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny") / "qwen3-vl")
    folder = tmp_path_factory.mktemp("qwen3-vl-2b-processor")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny / name, folder / name)
    (folder / "video_preprocessor_config.json").write_text(json.dumps(QWEN3_VL_VIDEO_PREPROCESSOR))
    image = {k: v for k, v in QWEN3_VL_VIDEO_PREPROCESSOR.items() if k not in ("fps", "video_processor_type")}
    (folder / "preprocessor_config.json").write_text(
        json.dumps({**image, "image_processor_type": "Qwen2VLImageProcessor"})
    )
    return load_vlm_processor(folder)


@pytest.mark.parametrize("frames, size", [(4, 32), (2, 32), (8, 224), (16, 448)])
def test_qwen3_vl_visual_tokens_and_timestamps_match_the_budget(qwen3_vl_processor, frames, size):
    """Qwen3-VL bounds pixels per clip: 4 frames of 32 px hold its 4,096-pixel floor and stay 32 px (2 tokens),
    where a per-frame floor (Qwen2-VL's rule) would resize them to 64 px (8 tokens); 2 frames of 32 px are
    under it and go to 64 px. Each temporal patch gets its timestamp, frames read at the checkpoint's 2 fps."""
    from reward.budget import processed_size, video_tokens, vision_geometry
    from reward.vlm import TensorQwen3VLProcessor

    processor = qwen3_vl_processor
    assert isinstance(processor, TensorQwen3VLProcessor)
    geometry = vision_geometry(processor)
    assert (geometry.patch_size, geometry.merge_size, geometry.min_pixels, geometry.pixel_bounds) == (
        16,
        2,
        4096,
        "video",
    )
    inputs, emitted = _video_prompt(processor, frames, size)
    assert emitted == video_tokens(frames, size, size, geometry)
    prompt = processor.tokenizer.decode(inputs["input_ids"][0])
    # temporal patch k covers frames 2k, 2k+1 at 2 fps: its time is their mean, (4k + 1) / 4 s
    assert [f"<{(4 * k + 1) / 4:.1f} seconds>" in prompt for k in range(frames // 2)] == [True] * (
        frames // 2
    )
    if size == 32:
        side = {4: 32, 2: 64}[frames]
        assert processed_size(32, 32, geometry, frames) == (side, side)
        assert emitted == {4: 2 * 1 * 1, 2: 1 * 2 * 2}[frames]  # temporal patches x merged tokens per side^2


# config.json of Qwen/Qwen3-VL-2B-Instruct at two decoder and two vision blocks (DeepStack then reads both
# vision blocks: the checkpoint's indexes 5, 11, 17 are beyond the cut)
QWEN3_VL_2B = dict(
    text=dict(hidden_size=2048, intermediate_size=6144, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
              rms_norm_eps=1e-6, hidden_act="silu", max_position_embeddings=262144, tie_word_embeddings=True,
              rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                               "mrope_interleaved": True}),
    vision=dict(hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2048, patch_size=16,
                temporal_patch_size=2, spatial_merge_size=2, num_position_embeddings=2304,
                hidden_act="gelu_pytorch_tanh", in_channels=3),
)  # fmt: skip


@pytest.mark.slow
def test_qwen3_vl_2b_trains_one_step_with_its_recipe_and_scores(qwen3_vl_processor, tmp_path):
    """configs/reward/qwen3vl-2b-lora.yaml on Qwen3-VL-2B's real widths: LoRA on the language model, one
    optimizer step, saved, reloaded by load_scorer with its processor; the video costs the budget's tokens."""
    from transformers import AutoModelForImageTextToText, Qwen3VLConfig

    from reward.budget import video_tokens, vision_geometry
    from reward.scoring import load_scorer
    from reward.vlm import TensorQwen3VLProcessor

    torch.manual_seed(0)
    tokenizer = qwen3_vl_processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=151936, num_hidden_layers=LAYERS, bos_token_id=ids("<|endoftext|>"),
                         eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), **QWEN3_VL_2B["text"]),
        vision_config=dict(depth=LAYERS, deepstack_visual_indexes=list(range(LAYERS)), **QWEN3_VL_2B["vision"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )  # fmt: skip
    backbone = tmp_path / "qwen3-vl-2b-2-blocks"
    AutoModelForImageTextToText.from_config(config).save_pretrained(backbone)
    qwen3_vl_processor.save_pretrained(backbone)
    _train_one_vlm_step("configs/reward/qwen3vl-2b-lora.yaml", backbone, tmp_path, 64)
    scorer = load_scorer(tmp_path / "model", device="cpu")
    assert isinstance(scorer.processing_class, TensorQwen3VLProcessor)
    scores = scorer(torch.rand(2, 2, 3, 64, 64), ["a red circle moving left"] * 2, "text_alignment")
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert video_tokens(2, 64, 64, vision_geometry(scorer.processing_class)) == 4  # 1 temporal x 2 x 2
