"""align.cogvideox on a real CogVideoXPipeline with tiny random components (no download, CPU).

Every test samples 32x32, 9-frame videos (3 latent frames) with 2 denoising steps.
"""

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from align.cogvideox import (
    KNOWN_GENERATORS,
    LORA_WEIGHTS_NAME,
    adapters_disabled,
    add_lora,
    decode_latents,
    denoising_error,
    encode_prompts,
    encode_videos_to_latents,
    generate,
    load_lora,
    load_pipeline,
    rotary_embeddings,
    save_lora,
    tiny_pipeline,
    validate_generator,
)

PROMPT = "a red circle moving left"
OTHER = "a blue square moving up"
STEPS = 2
CFG = 6.0
NUM_TRAIN_TIMESTEPS = 1000


def noise_and_timesteps(latents, seed):
    """Gaussian noise like `latents` [B, F, C, h, w] and one uniform training timestep per row."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=generator)
    return noise, torch.randint(0, NUM_TRAIN_TIMESTEPS, (latents.shape[0],), generator=generator)


def sample(pipe, prompts, seeds, **kwargs):
    return generate(pipe, prompts, seeds, num_inference_steps=STEPS, guidance_scale=CFG, **kwargs)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def batch(pipe):
    return sample(pipe, [PROMPT, PROMPT, OTHER], [0, 1, 2])


def training_inputs(pipe, batch):
    """Chosen-first batch of 2 pairs, [chosen 0, chosen 1; rejected 0, rejected 1], sharing noise/timesteps.

    Pair 0 compares samples 0 and 1; pair 1 compares sample 2 with itself.
    """
    latents = batch.latents[[0, 2, 1, 2]]
    embeds, _ = encode_prompts(pipe, [PROMPT, PROMPT, PROMPT, PROMPT])
    noise, timesteps = noise_and_timesteps(latents[:2], seed=0)
    # Diffusion-DPO: the two rows of a pair (i and B + i) share noise and timestep.
    return latents, embeds, torch.cat([noise, noise]), torch.cat([timesteps, timesteps])


def test_outputs_have_the_package_layouts_and_ranges(pipe, batch):
    assert batch.videos.shape == (3, 9, 3, 32, 32)  # [B, F, C, H, W]
    assert batch.videos.dtype == torch.float32
    assert 0 <= batch.videos.min() and batch.videos.max() <= 1
    assert batch.videos.std() > 0.01  # not a constant image
    assert batch.latents.shape == (3, 3, 4, 4, 4)  # [B, F_lat, C_lat, h, w]
    assert batch.prompts == [PROMPT, PROMPT, OTHER] and batch.seeds == [0, 1, 2] and len(batch) == 3

    longer = sample(pipe, [PROMPT], [0], num_frames=17, height=32, width=48)
    assert longer.videos.shape == (1, 17, 3, 32, 48)
    assert longer.latents.shape == (1, 5, 4, 4, 6)


def test_same_seed_same_video_and_different_seeds_differ(pipe, batch):
    again = sample(pipe, [PROMPT, PROMPT, OTHER], [0, 1, 2])
    assert torch.equal(again.videos, batch.videos)
    assert torch.equal(again.latents, batch.latents)
    assert (batch.videos[0] - batch.videos[1]).abs().max() > 0.1


def test_batched_rows_equal_rows_sampled_alone(pipe, batch):
    # batch_size=2 runs rows [0, 1] as one pipeline call and row 2 alone; row 0 is also sampled alone.
    chunked = sample(pipe, [PROMPT, PROMPT, OTHER], [0, 1, 2], batch_size=2)
    alone = sample(pipe, [PROMPT], [0])
    for out, rows in ((chunked, [0, 1, 2]), (alone, [0])):
        assert out.seeds == [batch.seeds[row] for row in rows]
        torch.testing.assert_close(out.latents, batch.latents[rows], atol=1e-4, rtol=0)
        torch.testing.assert_close(out.videos, batch.videos[rows], atol=1e-4, rtol=0)


def test_final_latents_decode_to_the_returned_videos(pipe, batch):
    torch.testing.assert_close(decode_latents(pipe, batch.latents), batch.videos, atol=1e-5, rtol=0)


def test_encode_decode_round_trip_keeps_layouts(pipe, batch):
    latents = encode_videos_to_latents(pipe, batch.videos)
    assert latents.shape == batch.latents.shape
    assert torch.isfinite(latents).all()
    assert torch.equal(latents, encode_videos_to_latents(pipe, batch.videos))  # posterior mode: deterministic
    assert decode_latents(pipe, latents).shape == batch.videos.shape
    with pytest.raises(ValueError, match=r"num_frames=8.*\(num_frames - 1\) % 8 == 0"):
        encode_videos_to_latents(pipe, batch.videos[:, :8])


def test_bad_sampling_arguments_fail_clearly(pipe):
    with pytest.raises(ValueError, match="num_frames=13"):  # legal for the pipeline, but decodes to 16 frames
        sample(pipe, [PROMPT], [0], num_frames=13)
    with pytest.raises(ValueError, match="multiples of 16"):
        sample(pipe, [PROMPT], [0], height=40)
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        sample(pipe, [PROMPT, OTHER], [0])


def test_encode_prompts_gives_the_pipeline_embeddings(pipe):
    embeds, negative = encode_prompts(pipe, [PROMPT, OTHER], do_classifier_free_guidance=True)
    assert embeds.shape == (2, 16, 32)  # [B, max_text_seq_length, T5 d_model]
    assert negative.shape == embeds.shape
    empty, none = encode_prompts(pipe, ["", ""])
    assert none is None
    torch.testing.assert_close(negative, empty)
    assert not torch.allclose(embeds[0], embeds[1])


def test_denoising_error_is_per_example_and_shares_noise_within_pairs(pipe, batch):
    latents, embeds, noise, timesteps = training_inputs(pipe, batch)
    assert torch.equal(noise[:2], noise[2:]) and torch.equal(timesteps[:2], timesteps[2:])
    assert timesteps.dtype == torch.long and 0 <= timesteps.min() and timesteps.max() < NUM_TRAIN_TIMESTEPS
    with torch.no_grad():
        err = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
    assert err.shape == (4,) and torch.isfinite(err).all() and (err > 0).all()
    # Pair 1 holds the same latents twice (same noise, timestep, prompt); pair 0 two different samples.
    torch.testing.assert_close(err[1], err[3])
    assert not torch.isclose(err[0], err[2])


def test_weighted_x0_error_equals_the_v_prediction_error(pipe, batch):
    """(x0_hat - x0)^2 / (1 - a_t) == (v_hat - v)^2 with v = sqrt(a_t) noise - sqrt(1 - a_t) x0."""
    latents = batch.latents
    embeds, _ = encode_prompts(pipe, batch.prompts)
    noise, _ = noise_and_timesteps(latents, seed=1)
    timesteps = torch.tensor([0, 500, NUM_TRAIN_TIMESTEPS - 1])  # both ends of the schedule included
    scheduler = pipe.scheduler
    with torch.no_grad():
        err = denoising_error(pipe.transformer, scheduler, latents, embeds, noise, timesteps)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        v_hat = pipe.transformer(noisy, embeds, timesteps, return_dict=False)[0]
    a = scheduler.alphas_cumprod[timesteps].float().view(-1, 1, 1, 1, 1)
    v = a.sqrt() * noise - (1 - a).sqrt() * latents
    expected = ((v_hat - v) ** 2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(err, expected, atol=1e-4, rtol=1e-4)


def with_transformer(pipe, **changes):
    """A copy of `pipe` whose transformer is rebuilt with config `changes` (e.g. RoPE, 1.5 patching)."""
    variant = tiny_pipeline(seed=0)
    config = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_")}  # drop bookkeeping
    torch.manual_seed(0)
    variant.transformer = CogVideoXTransformer3DModel.from_config({**config, **changes}).eval()
    return variant


@pytest.mark.parametrize(
    "changes, padded_frames",
    [
        ({"use_rotary_positional_embeddings": True}, 3),  # CogVideoX-5b style
        ({"use_rotary_positional_embeddings": True, "patch_size_t": 2, "patch_bias": False}, 4),  # 1.5 style
    ],
)
def test_rotary_models_sample_and_train_with_the_pipelines_rope(pipe, changes, padded_frames):
    variant = with_transformer(pipe, **changes)
    expected = variant._prepare_rotary_positional_embeddings(32, 32, padded_frames, torch.device("cpu"))
    built = rotary_embeddings(variant.transformer, padded_frames, 4, 4)
    for ours, theirs in zip(built, expected, strict=True):
        torch.testing.assert_close(ours, theirs)

    out = sample(variant, [PROMPT, OTHER], [0, 1])
    assert out.videos.shape == (2, 9, 3, 32, 32) and out.latents.shape == (2, 3, 4, 4, 4)  # padding dropped
    embeds, _ = encode_prompts(variant, out.prompts)
    noise, timesteps = noise_and_timesteps(out.latents, seed=0)
    with torch.no_grad():
        err = denoising_error(variant.transformer, variant.scheduler, out.latents, embeds, noise, timesteps)
    assert err.shape == (2,) and torch.isfinite(err).all()

    # By hand: 1.5 pads by repeating the first latent frame and leaves the pad out of the mean.
    pad = padded_frames - out.latents.shape[1]
    x0 = torch.cat([out.latents[:, :1].repeat(1, pad, 1, 1, 1), out.latents], dim=1)
    eps = torch.cat([noise[:, :1].repeat(1, pad, 1, 1, 1), noise], dim=1)
    a = variant.scheduler.alphas_cumprod[timesteps].float().view(-1, 1, 1, 1, 1)
    noisy = a.sqrt() * x0 + (1 - a).sqrt() * eps
    with torch.no_grad():
        v_hat = variant.transformer(noisy, embeds, timesteps, image_rotary_emb=built, return_dict=False)[0]
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(err, ((v_hat - v) ** 2)[:, pad:].mean(dim=(1, 2, 3, 4)), atol=1e-4, rtol=1e-4)


def perturb_lora(transformer, seed=0):
    """Stand-in for training steps: give every LoRA B matrix non-zero values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def test_lora_starts_as_the_reference_and_only_adapters_train(batch):
    pipe = tiny_pipeline(seed=0)
    latents, embeds, noise, timesteps = training_inputs(pipe, batch)
    params = add_lora(pipe.transformer, rank=4, alpha=4)
    names = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names) and len(names) == len(params)
    assert all(p.dtype == torch.float32 for p in params)

    policy = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
    with torch.no_grad(), adapters_disabled(pipe.transformer):
        reference = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
    torch.testing.assert_close(policy.detach(), reference)  # B = 0: policy == reference at step 0
    torch.testing.assert_close(sample(pipe, [PROMPT], [0]).videos, batch.videos[:1], atol=1e-5, rtol=0)

    policy.mean().backward()
    grads = {n: p.grad for n, p in pipe.transformer.named_parameters() if p.requires_grad}
    assert all(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)  # B gets gradient first

    perturb_lora(pipe.transformer)
    with torch.no_grad():
        moved = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
        with adapters_disabled(pipe.transformer):
            still_reference = denoising_error(
                pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps
            )
    assert not torch.allclose(moved, reference)
    torch.testing.assert_close(still_reference, reference)


def test_adapters_come_back_after_an_exception(batch):
    pipe = tiny_pipeline(seed=0)
    latents, embeds, noise, timesteps = training_inputs(pipe, batch)
    add_lora(pipe.transformer, rank=4, alpha=4)
    perturb_lora(pipe.transformer)
    with torch.no_grad():
        before = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
        with pytest.raises(RuntimeError, match="boom"), adapters_disabled(pipe.transformer):
            raise RuntimeError("boom")
        after = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
    torch.testing.assert_close(after, before)


def test_saved_lora_loads_into_a_fresh_pipeline_with_the_same_outputs(tmp_path, batch):
    base_dir = tmp_path / "base"
    tiny_pipeline(seed=0).save_pretrained(base_dir)
    pipe = load_pipeline(str(base_dir))
    torch.testing.assert_close(sample(pipe, [PROMPT], [0]).videos, batch.videos[:1], atol=1e-5, rtol=0)

    add_lora(pipe.transformer, rank=4, alpha=8)
    perturb_lora(pipe.transformer)
    adapted = sample(pipe, [PROMPT, OTHER], [0, 1])
    lora_dir = save_lora(pipe.transformer, tmp_path / "lora")
    assert (lora_dir / LORA_WEIGHTS_NAME).is_file()
    assert not list(tmp_path.glob(".lora*"))  # written atomically: no temporary folder left

    loaded = load_pipeline(str(base_dir), lora_weights=str(lora_dir))
    reloaded = sample(loaded, [PROMPT, OTHER], [0, 1])
    torch.testing.assert_close(reloaded.videos, adapted.videos, atol=1e-5, rtol=0)
    assert (adapted.videos[0] - batch.videos[0]).abs().max() > 0.01  # the adapter does change samples

    # Resuming training: the saved adapter goes into a fresh trainable adapter of the same shape.
    latents, embeds, noise, timesteps = training_inputs(pipe, batch)
    resumed = tiny_pipeline(seed=0)
    add_lora(resumed.transformer, rank=4, alpha=8)
    load_lora(resumed.transformer, lora_dir)
    with torch.no_grad():
        expected = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
        got = denoising_error(resumed.transformer, resumed.scheduler, latents, embeds, noise, timesteps)
    torch.testing.assert_close(got, expected)
    wider = tiny_pipeline(seed=0)
    add_lora(wider.transformer, rank=8, alpha=8)
    with pytest.raises(ValueError, match=f"{LORA_WEIGHTS_NAME}: the adapter does not fit"):
        load_lora(wider.transformer, lora_dir)


def test_unknown_generators_fail_before_any_work(tmp_path):
    assert validate_generator("tiny") == "tiny" and validate_generator("tiny:7") == "tiny"
    assert all(validate_generator(name) == "hub" for name in KNOWN_GENERATORS)
    with pytest.raises(ValueError, match=r"unknown generator 'THUDM/CogVideoX-7b'.*THUDM/CogVideoX-2b"):
        load_pipeline("THUDM/CogVideoX-7b")
    empty = tmp_path / "not_a_pipeline"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"not_a_pipeline.*has no model_index.json"):
        load_pipeline(str(empty))
    with pytest.raises(ValueError, match="tiny:SEED"):
        validate_generator("tiny:seven")
    with pytest.raises(ValueError, match="cpu_offload='all'"):
        load_pipeline("tiny", cpu_offload="all")
    with pytest.raises(ValueError, match=f"has no {LORA_WEIGHTS_NAME}"):
        load_pipeline("tiny", lora_weights=str(empty))


def test_load_pipeline_tiny_seeds_and_switches():
    pipe = load_pipeline(
        "tiny:1", dtype="float32", device="cpu", enable_vae_tiling=True, enable_vae_slicing=True
    )
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert pipe.transformer.dtype == torch.float32
    other = load_pipeline("tiny")
    assert not torch.equal(next(pipe.transformer.parameters()), next(other.transformer.parameters()))
    with pytest.raises(ValueError, match="unknown dtype 'float13'"):
        load_pipeline("tiny", dtype="float13")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cpu_offload", [None, "model", "sequential"])
def test_cuda_sampling_matches_cpu_with_every_offload_mode(batch, cpu_offload):
    pipe = load_pipeline("tiny", dtype="float32", device="cuda", cpu_offload=cpu_offload)
    out = sample(pipe, [PROMPT, PROMPT, OTHER], [0, 1, 2])
    # CPU generators make the initial noise device-independent; kernels differ slightly on GPU.
    torch.testing.assert_close(out.videos, batch.videos, atol=2e-2, rtol=0)


def test_training_helpers_accept_an_accelerate_wrapped_transformer(tmp_path, batch):
    """accelerator.prepare wraps the model (here DataParallel, which runs the module itself on CPU)."""
    pipe = tiny_pipeline(seed=0)
    latents, embeds, noise, timesteps = training_inputs(pipe, batch)
    add_lora(pipe.transformer, rank=4, alpha=4)
    perturb_lora(pipe.transformer)
    wrapped = torch.nn.DataParallel(pipe.transformer)
    with torch.no_grad():
        plain = denoising_error(pipe.transformer, pipe.scheduler, latents, embeds, noise, timesteps)
        torch.testing.assert_close(
            denoising_error(wrapped, pipe.scheduler, latents, embeds, noise, timesteps), plain
        )
        with adapters_disabled(wrapped) as reference:
            off = denoising_error(reference, pipe.scheduler, latents, embeds, noise, timesteps)
    assert not torch.allclose(off, plain)
    assert (save_lora(wrapped, tmp_path / "lora") / LORA_WEIGHTS_NAME).is_file()
