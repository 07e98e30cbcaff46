"""Test-wide settings: offline, quiet, deterministic, small thread pools (CI has 2 cores)."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_corpus_dir(tmp_path_factory):
    """A small synthetic corpus (3 pairs per dimension: one per split), shared by the session; copy before changing it."""
    from reward.synthetic import build_synthetic_corpus

    return build_synthetic_corpus(
        tmp_path_factory.mktemp("synthetic"), pairs_per_dimension=3, seed=0, num_workers=1
    )


@pytest.fixture(scope="session")
def tiny_reward_model_dir(tmp_path_factory):
    """An untrained tiny CleveRewardModel (seed 0) saved with its word tokenizer by `save_pretrained`."""
    import torch

    from reward.modeling import CleveRewardConfig, CleveRewardModel
    from reward.synthetic import CAPTIONS, SYNTHETIC_DIMENSIONS
    from reward.text import build_word_tokenizer

    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(CAPTIONS)
    config = CleveRewardConfig(
        vocab_size=len(tokenizer),
        conv_channels=[8, 8],  # tiny: a stem and one block, 8 channels each
        word_embedding_dim=16,
        text_hidden_size=16,
        projection_dim=16,
        num_frames=8,  # half the synthetic clip: read_video samples frames
        frame_size=[32, 32],  # half the synthetic size: read_video resizes
        dimensions=list(SYNTHETIC_DIMENSIONS),
    )
    path = tmp_path_factory.mktemp("tiny_reward_model")
    CleveRewardModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
