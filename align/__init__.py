"""CleveReward `align`: use a video reward model to make a text-to-video generator better.

CogVideoX sampling, reward functions, best-of-N reranking, Diffusion-DPO and reward-weighted
fine-tuning with LoRA on Accelerate. `align` consumes only the score-function contract:
`score(videos: float [B, F, C, H, W] in [0, 1], prompts: list[str], dimension: str | None) -> float [B]`.
"""
