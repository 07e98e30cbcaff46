"""CleveReward `reward`: video reward models from human judgments.

data (video I/O, the synthetic world, VideoCross pairs) → model → training → evaluation → scoring.
Names are imported lazily so that `import reward` stays cheap.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_EXPORTS = {
    "VideoReadError": "reward.video",
    "read_video": "reward.video",
    "write_video": "reward.video",
    "resample_videos": "reward.video",
    "build_question": "reward.dimensions",
    "CANONICAL_DIMENSIONS": "reward.dimensions",
    "Corpus": "reward.pairs",
    "load_corpus": "reward.pairs",
    "save_corpus": "reward.pairs",
    "CleveRewardConfig": "reward.modeling",
    "CleveRewardModel": "reward.modeling",
    "VLMRewardModel": "reward.vlm",
    "VLMRewardConfig": "reward.vlm",
    "load_scorer": "reward.scoring",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reward' has no attribute {name!r}")
