"""CogVideoX, all of its quirks in one module: loading, sampling, latents, denoising error, LoRA.

The rest of `align` sees videos as float `[B, F, C, H, W]` in [0, 1] and latents as
`[B, F_lat, C_lat, h, w]`; everything below hides what diffusers' CogVideoX does differently:

- **Two layouts.** The transformer and the pipeline's latents are `[B, F, C, H, W]` (frames before
  channels); the VAE wants `[B, C, F, H, W]`. Only `decode_latents` / `encode_videos_to_latents`
  permute, each with a shape comment. Latents here are always *scaled* (times
  `vae.config.scaling_factor`), i.e. what the transformer denoises.
- **Frame counts.** The VAE compresses time by 4 (keeping the first frame): `F` frames become
  `F_lat = (F - 1) // 4 + 1` latent frames, and it decodes latent frames in chunks of two after a
  first chunk of three, so only an odd `F_lat` decodes back to `F` frames: `(F - 1) % 8 == 0`
  (9, 17, 25, ..., 49; 13 frames would decode to 16). A VAE that compresses time by t instead
  needs `(F - 1) % 2t == 0` (the world generator: t = 2, 9 frames; the sharp-VAE recipe: t = 1,
  any odd `F`). Height and width must divide by the VAE's spatial factor (8) times the
  transformer's patch size (2), i.e. by 16.
- **One generator per candidate.** `CogVideoXPipeline` ignores `num_videos_per_prompt`; N
  candidates are the prompt repeated N times with a list of N seeded `torch.Generator`s. The
  initial noise of each row comes from its own generator, so a seed gives the same video alone or
  inside a batch.
- **v-prediction.** The scheduler is DDIM with `prediction_type="v_prediction"` and zero-terminal-SNR
  betas. `denoising_error` turns the transformer's v into an x0 prediction with
  `scheduler.get_velocity(v, x_t, t) = sqrt(a_t) x_t - sqrt(1 - a_t) v` and weights the squared
  x0 error by `1 / (1 - a_t)` (as diffusers' `train_cogvideox_lora.py`). That weighted error equals
  the plain squared v error, so it lives on the same O(1) scale as an epsilon-prediction MSE.
- **RoPE.** CogVideoX-5b and 1.5 use 3D rotary embeddings whose grid depends on the latent size;
  `rotary_embeddings` builds them for training exactly as the pipeline does for sampling.
- **CogVideoX 1.5 frame padding.** With `patch_size_t = 2` the latent frame count must be even; the
  pipeline prepends noise frames and drops them before decoding. `generate` returns the unpadded
  latents; `denoising_error` pads by repeating the first latent frame and ignores the pad in its mean.
- **Stochastic sampling with log-probabilities.** CogVideoX's schedulers step with η = 0; GRPO
  needs Gaussian transitions. `sample_trajectories` steps DDIM with η > 0 from the scheduler's own
  `alphas_cumprod` and records each step's log-probability (`ddim_step_with_log_prob`), at η = 0
  it is the scheduler's step exactly.
- **LoRA.** Adapters go in with peft through `transformer.add_adapter` with B zero-initialised (the
  policy equals the reference at step 0), are saved as `pytorch_lora_weights.safetensors` by
  `CogVideoXPipeline.save_lora_weights` so `pipe.load_lora_weights(dir)` reads them, and the
  reference model is the same transformer inside `adapters_disabled`.
- **Loading.** `"tiny"` / `"tiny:SEED"` builds a real, randomly initialised `CogVideoXPipeline`
  from configs (no download) for tests and CPU demos; `"world"` is the committed world generator
  (`WORLD_PIPELINE`, a pipeline folder inside the package); known hub ids and local folders go through
  `CogVideoXPipeline.from_pretrained`. Anything else fails in `validate_generator`, before any work.
"""

from __future__ import annotations

from align.cogvideox.loading import (
    COGVIDEOX_SCHEDULER,
    KNOWN_GENERATORS,
    TINY,
    TINY_VOCABULARY,
    WORLD,
    WORLD_PIPELINE,
    GeneratorSpec,
    load_pipeline,
    tiny_pipeline,
    validate_generator,
)
from align.cogvideox.sampling import (
    GeneratedBatch,
    decode_latents,
    decode_with_grad,
    default_video_size,
    encode_prompts,
    encode_videos_to_latents,
    generate,
    latent_frame_count,
)
from align.cogvideox.stochastic import (
    Trajectories,
    ddim_step_with_log_prob,
    ddim_transition,
    gaussian_log_prob,
    guided_velocity,
    initial_noise,
    latent_shape,
    sample_trajectories,
    step_std,
    stochastic_steps,
)
from align.cogvideox.training import (
    DEFAULT_LORA_TARGETS,
    LORA_WEIGHTS_NAME,
    adapters_disabled,
    add_lora,
    denoising_error,
    load_lora,
    rotary_embeddings,
    save_lora,
)

__all__ = [
    "COGVIDEOX_SCHEDULER",
    "GeneratorSpec",
    "KNOWN_GENERATORS",
    "TINY",
    "TINY_VOCABULARY",
    "WORLD",
    "WORLD_PIPELINE",
    "LORA_WEIGHTS_NAME",
    "DEFAULT_LORA_TARGETS",
    "GeneratedBatch",
    "default_video_size",
    "validate_generator",
    "load_pipeline",
    "tiny_pipeline",
    "encode_prompts",
    "generate",
    "decode_latents",
    "decode_with_grad",
    "encode_videos_to_latents",
    "latent_frame_count",
    "rotary_embeddings",
    "denoising_error",
    "Trajectories",
    "ddim_transition",
    "gaussian_log_prob",
    "ddim_step_with_log_prob",
    "guided_velocity",
    "sample_trajectories",
    "step_std",
    "stochastic_steps",
    "initial_noise",
    "latent_shape",
    "add_lora",
    "save_lora",
    "load_lora",
    "adapters_disabled",
]
