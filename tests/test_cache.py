"""The embedding cache for frozen towers (reward/cache.py) and its use in training (reward/trainer.py)."""

import pytest
import torch

from reward.cache import EmbeddingCache, question_key, tower_fingerprint, video_key
from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.pairs import load_corpus
from reward.synthetic import build_synthetic_corpus
from reward.text import build_word_tokenizer
from reward.trainer import CleveRewardTrainingConfig, VideoRewardTrainer
from reward.video import read_video

FRAMES, SIZE = 4, 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return load_corpus(build_synthetic_corpus(out, 8, seed=0, num_workers=1))  # 16 train pairs


def test_cache_round_trips_features_through_shards(tmp_path):
    features = torch.randn(5, 7)
    keys = [f"k{i}" for i in range(5)]
    cache = EmbeddingCache(tmp_path, "fp", shard_size=3)
    cache.put(keys[:4], features[:4])  # 4 >= 3: written at once
    assert len(list((tmp_path / "fp").glob("shard-*.safetensors"))) == 1
    cache.put(keys[4:], features[4:])
    cache.flush()
    reopened = EmbeddingCache(tmp_path, "fp")
    assert len(reopened) == 5 and "k2" in reopened and "k9" not in reopened
    torch.testing.assert_close(reopened.get(keys), features)
    with pytest.raises(KeyError, match="not in the embedding cache"):
        reopened.get(["k9"])
    assert len(EmbeddingCache(tmp_path, "other")) == 0  # another fingerprint: another namespace


def test_keys_follow_content_and_fingerprints_follow_weights_and_preprocessing(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert video_key(a) == video_key(b)
    assert question_key("rate it") != question_key("rate that")
    tower = torch.nn.Linear(3, 2)
    fingerprint = tower_fingerprint(tower, {"num_frames": 4})
    assert fingerprint == tower_fingerprint(tower, {"num_frames": 4})
    assert fingerprint != tower_fingerprint(tower, {"num_frames": 8})
    with torch.no_grad():
        tower.weight[0, 0] += 1
    assert fingerprint != tower_fingerprint(tower, {"num_frames": 4})


def frozen_model(corpus) -> tuple[CleveRewardModel, object]:
    tokenizer = build_word_tokenizer(corpus.pairs["train"]["prompt"])
    config = CleveRewardConfig(
        vocab_size=len(tokenizer),
        conv_channels=[8, 16],
        word_embedding_dim=16,
        text_hidden_size=32,
        projection_dim=16,
        num_frames=FRAMES,
        frame_size=[SIZE, SIZE],
        video_tower_mode="frozen",
        text_tower_mode="frozen",
    )
    torch.manual_seed(0)
    return CleveRewardModel(config), tokenizer


def cached_trainer(model, tokenizer, corpus, tmp_path, epochs: int) -> VideoRewardTrainer:
    args = CleveRewardTrainingConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_train_epochs=epochs,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        tie_loss=False,
        embedding_cache_dir=str(tmp_path / "cache"),
        use_cpu=True,
    )
    return VideoRewardTrainer(
        model=model,
        args=args,
        train_dataset=corpus.pairs["train"],
        processing_class=tokenizer,
        video_root=corpus.video_root,
    )


def test_frozen_towers_train_from_cached_features_hit_on_the_second_epoch_and_run(corpus, tmp_path):
    model, tokenizer = frozen_model(corpus)
    train = corpus.pairs["train"]
    videos = sorted({corpus.video_path(p) for p in [*train["chosen_video"], *train["rejected_video"]]})
    projections = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = cached_trainer(model, tokenizer, corpus, tmp_path, epochs=2)
    trainer.train()
    # Epoch 1 encodes each unique video once; epoch 2 reads them all from the cache.
    assert trainer.video_cache.misses == len(videos)
    assert trainer.video_cache.hits >= 2 * len(train)
    assert trainer.text_cache.misses == len(set(zip(train["dimension"], train["prompt"])))
    assert all(not torch.equal(p, projections[n]) for n, p in model.named_parameters() if p.requires_grad)

    # Cached features are the tower's own outputs.
    model.eval()
    with torch.no_grad():
        for path in videos[:3]:
            pixels = model.preprocess_videos(read_video(path, FRAMES, size=SIZE)[None].float() / 255)
            expected = model.video_features(pixels)[0]
            torch.testing.assert_close(
                trainer.video_cache.get([video_key(path)])[0], expected, atol=1e-5, rtol=1e-4
            )

    # A later run with the same frozen towers reads every feature from disk.
    again = cached_trainer(model, tokenizer, corpus, tmp_path, epochs=1)
    assert len(again.video_cache) == len(videos)
    again.train()
    assert again.video_cache.misses == 0 and again.text_cache.misses == 0
