"""CogVideoX-2b / 5b / 1.5-5B at their real widths (one transformer block, one T5 block, random weights).

The values are the published ones: the transformer's from `transformer/config.json` of each model
(as diffusers' `scripts/convert_cogvideox_to_diffusers.py` writes them: 2b 30 heads and sin-cos
positions, 5b 48 heads and 3D RoPE, 1.5 a temporal patch of 2), the VAE is diffusers'
`AutoencoderKLCogVideoX` default (CogVideoX's VAE: 128-256-256-512 channels, 16 latent channels,
3 layers per block) with each model's `scaling_factor`, the scheduler is the conversion script's,
and the text encoder is T5 v1.1 XXL's width (`google/t5-v1_1-xxl` config.json). Depth is cut to one
block so a CPU can run them; sampling runs at 64 x 64 x 9 frames, 2 steps.
"""

import dataclasses

import pytest
import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)
from transformers import T5Config, T5EncoderModel

from align import cogvideox
from align.config import config_parser
from align.data import example_noise
from align.preference import save_sample_pairs
from align.rerank import rerank
from align.rewards import color_match
from align.train import train

pytestmark = pytest.mark.slow  # about a minute each: real-width blocks on 2 cores

# transformer/config.json of each model (the keys that differ from diffusers' defaults)
COMMON = dict(
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    text_embed_dim=4096,
    time_embed_dim=512,
    max_text_seq_length=226,
    temporal_compression_ratio=4,
    num_layers=1,
)
TRANSFORMERS = {
    "2b": dict(num_attention_heads=30, use_rotary_positional_embeddings=False, sample_height=60, sample_width=90,
               sample_frames=49, patch_bias=True),
    "5b": dict(num_attention_heads=48, use_rotary_positional_embeddings=True, sample_height=60, sample_width=90,
               sample_frames=49, patch_bias=True),
    "1.5": dict(num_attention_heads=48, use_rotary_positional_embeddings=True, sample_height=300, sample_width=300,
                sample_frames=81, patch_size_t=2, patch_bias=False),
}  # fmt: skip
VAE_SCALING = {"2b": 1.15258426, "5b": 0.7, "1.5": 0.7}  # the conversion script's --scaling_factor
# google/t5-v1_1-xxl config.json (one of its 24 blocks)
T5_XXL = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=1, feed_forward_proj="gated-gelu",
              relative_attention_num_buckets=32, layer_norm_epsilon=1e-6, vocab_size=32128)  # fmt: skip
SCHEDULER = dict(snr_shift_scale=3.0, beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085,
                 clip_sample=False, num_train_timesteps=1000, prediction_type="v_prediction",
                 rescale_betas_zero_snr=True, set_alpha_to_one=True, timestep_spacing="trailing")  # fmt: skip
SIZE = {"height": 64, "width": 64, "num_frames": 9}
PROMPTS = ["a red circle moving left", "a blue square moving up"]


def real_width_pipeline(version: str) -> CogVideoXPipeline:
    torch.manual_seed(0)
    tokenizer = (
        cogvideox.tiny_pipeline().tokenizer
    )  # T5's sentencepiece needs the hub; ids fit the real vocabulary
    transformer = CogVideoXTransformer3DModel(**COMMON, **TRANSFORMERS[version]).eval()
    vae = AutoencoderKLCogVideoX(scaling_factor=VAE_SCALING[version]).eval()
    text_encoder = T5EncoderModel(T5Config(**T5_XXL)).eval()
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=CogVideoXDDIMScheduler(**SCHEDULER))  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("version", sorted(TRANSFORMERS))
def test_real_width_generator_samples_and_gives_a_denoising_error(version):
    pipe = real_width_pipeline(version)
    batch = cogvideox.generate(pipe, PROMPTS, [0, 1], num_inference_steps=2, guidance_scale=6.0, **SIZE)
    assert batch.videos.shape == (2, 9, 3, 64, 64) and batch.latents.shape == (2, 3, 16, 8, 8)
    assert torch.isfinite(batch.videos).all()
    embeds, _ = cogvideox.encode_prompts(pipe, PROMPTS)
    assert embeds.shape == (2, 226, 4096)
    draws = [example_noise(batch.latents.shape[1:], 1000, seed=0, position=i) for i in range(2)]
    noise, t = torch.stack([n for n, _ in draws]), torch.tensor([t for _, t in draws])
    with torch.no_grad():
        err = cogvideox.denoising_error(pipe.transformer, pipe.scheduler, batch.latents, embeds, noise, t)
    assert err.shape == (2,) and torch.isfinite(err).all()


def test_one_dpo_step_with_the_2b_recipe(tmp_path):
    """configs/align/cogvideox-2b-dpo.yaml (rank-64 LoRA on attention, beta 2500) on the real-width 2b."""
    (config,) = config_parser().parse_args_and_config(["--config", "configs/align/cogvideox-2b-dpo.yaml"])
    pipe = real_width_pipeline("2b")
    rerank(pipe, PROMPTS, [color_match], tmp_path / "samples", n=2, top_k=1, seed=0, num_inference_steps=2,
           guidance_scale=1.0, generator_name="real-width-2b", generate_kwargs=SIZE)  # fmt: skip
    save_sample_pairs(tmp_path / "samples", strategy="all")
    config = dataclasses.replace(
        config,
        data=str(tmp_path / "samples"),
        output_dir=str(tmp_path / "train"),
        steps=1,
        gradient_accumulation_steps=1,
        mixed_precision="no",
        checkpointing_steps=0,
        eval_steps=0,
        report_to="none",
    )  # fmt: skip  (fp16 mixed precision is for GPUs)
    cogvideox.add_lora(
        pipe.transformer, config.lora_rank, config.lora_alpha, tuple(config.lora_target_modules)
    )
    summary = train(config, pipe)
    assert summary["last"]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: LoRA's B = 0 at step 0
    assert (tmp_path / "train" / "lora" / cogvideox.LORA_WEIGHTS_NAME).is_file()
