"""Launched by tests/test_align_ddp.py under torchrun: `align.train` as-is, then every rank writes its LoRA.

    torchrun --nproc_per_node 2 tests/align_ddp_worker.py --config configs/align/tiny-dpo.yaml --data ... --output_dir ...

Training is `align.train.run` unchanged (DDP, or FSDP with --fsdp); under DDP the per-rank dump
(`lora_rank<r>.safetensors`) lets the test check that training left identical adapters on every process.
"""

import os
import sys

from safetensors.torch import save_file
from trl import TrlParser

from align.config import AlignConfig
from align.train import build_pipeline, run

if __name__ == "__main__":
    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(sys.argv[1:])
    pipe = build_pipeline(config, "cpu")
    run(config, pipe)
    if config.fsdp:  # each rank holds shards; the whole adapter is the saved lora/
        sys.exit(0)
    lora = {
        name: p.detach().contiguous() for name, p in pipe.transformer.named_parameters() if "lora_" in name
    }
    save_file(lora, os.path.join(config.output_dir, f"lora_rank{os.environ.get('RANK', '0')}.safetensors"))
