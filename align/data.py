"""Alignment data: precomputed latents, and the batch, noise and timestep of every training position.

Design decisions:
- Training reads the generator's own final latents (safetensors written by `align.rerank`):
  no video is encoded during training.
- The batch of every micro-step, its noise and its timesteps are pure functions of
  (seed, micro-step, position in the global batch). So a resumed run sees exactly the batches
  and noise of an uninterrupted one, and a run on N processes sees the same global batches as a
  run on one (each process takes its slice of the global batch).
- A Diffusion-DPO pair shares its noise and timestep: `micro_batch` draws them once per pair,
  for the chosen row; the loss repeats them for the rejected row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from align.config import AlignConfig

__all__ = [
    "LATENTS_KEY",
    "PreferenceLatents",
    "ScoredLatents",
    "load_training_data",
    "batch_indices",
    "example_noise",
    "micro_batch",
]

LATENTS_KEY = "latents"
# Mixes the run seed with an example's global position into one generator seed (a large prime
# keeps (seed, position) pairs from colliding for any realistic number of positions).
_SEED_STRIDE = 1_000_003


def _read_latents(path: Path, where: str) -> torch.Tensor:
    """One example's latents [F_lat, C_lat, h, w] from a safetensors file; errors name the file and row."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: latents file {path} does not exist")
    tensors = load_file(str(path))
    if LATENTS_KEY not in tensors:
        raise ValueError(f"{where}: {path} has no {LATENTS_KEY!r} tensor (keys: {sorted(tensors)})")
    latents = tensors[LATENTS_KEY]
    if latents.dim() != 4:
        raise ValueError(
            f"{where}: {path} holds latents of shape {tuple(latents.shape)}, expected [F, C, h, w]"
        )
    return latents


@dataclass
class PreferenceLatents:
    """DPO data: per pair the prompt and the chosen / rejected latents files."""

    prompts: list[str]
    chosen: list[Path]
    rejected: list[Path]

    def __len__(self) -> int:
        return len(self.prompts)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        where = f"pair {index} ({self.prompts[index]!r})"
        return _read_latents(self.chosen[index], where), _read_latents(self.rejected[index], where)


@dataclass
class ScoredLatents:
    """RWR data: per sample the prompt, its latents file and its reward."""

    prompts: list[str]
    latents: list[Path]
    rewards: list[float]

    def __len__(self) -> int:
        return len(self.prompts)

    def load(self, index: int) -> torch.Tensor:
        return _read_latents(self.latents[index], f"sample {index} ({self.prompts[index]!r})")


def load_training_data(config: AlignConfig) -> tuple[PreferenceLatents | ScoredLatents, dict]:
    """The training examples of `config.data` and a report of what was skipped and why.

    DPO reads the corpus's train split; RWR reads every manifest candidate with latents and a
    finite score. Rows without latents are skipped and counted, never silently dropped.
    """
    if config.data is None:
        raise ValueError("no training data: set --data (a pair corpus for dpo, a samples folder for rwr)")
    skipped: list[dict] = []
    if config.algorithm == "dpo":
        from reward.pairs import load_corpus

        corpus = load_corpus(config.data)
        split = corpus.pairs["train"]
        for column in ("chosen_latents", "rejected_latents"):
            if column not in split.column_names:
                raise ValueError(
                    f"{config.data}: pairs have no {column!r} column (build them with align.preference)"
                )
        prompts, chosen, rejected = [], [], []
        for i, row in enumerate(split):
            if not row["chosen_latents"] or not row["rejected_latents"]:
                skipped.append({"row": i, "reason": "no latents"})
                continue
            prompts.append(row["prompt"])
            chosen.append(corpus.video_path(row["chosen_latents"]))
            rejected.append(corpus.video_path(row["rejected_latents"]))
        data: PreferenceLatents | ScoredLatents = PreferenceLatents(prompts, chosen, rejected)
    else:
        from align.manifest import load_manifest

        root = Path(config.data)
        root = root if root.is_dir() else root.parent
        manifest = load_manifest(config.data)
        name = config.reward_name or manifest["rewards"][0]["name"]
        prompts, paths, rewards = [], [], []
        for entry in manifest["prompts"]:
            for cand in entry["candidates"]:
                where = f"prompt {entry['index']} candidate {cand['candidate']}"
                if name not in cand["scores"]:
                    raise ValueError(
                        f"{config.data}: {where} has no score {name!r} (scores: {sorted(cand['scores'])})"
                    )
                if cand["latents"] is None or cand["scores"][name] is None:
                    skipped.append(
                        {"row": where, "reason": "no latents" if cand["latents"] is None else "no score"}
                    )
                    continue
                prompts.append(entry["prompt"])
                paths.append(root / cand["latents"])
                rewards.append(float(cand["scores"][name]))
        if config.rwr_per_prompt:
            from align.rewards import normalize_per_prompt

            rewards = normalize_per_prompt(torch.tensor(rewards), prompts).tolist()
        data = ScoredLatents(prompts, paths, rewards)
    if len(data) == 0:
        raise ValueError(
            f"{config.data}: no usable training examples ({len(skipped)} skipped: {skipped[:3]})"
        )
    return data, {"examples": len(data), "skipped": len(skipped), "skipped_rows": skipped}


def batch_indices(num_examples: int, global_batch: int, micro_step: int, seed: int) -> list[int]:
    """Dataset indices of the global batch of `micro_step`: epoch-wise seeded permutations, in order.

    Global position p = micro_step * global_batch + j reads element p % N of the permutation of
    epoch p // N, so batches run across epoch boundaries without dropping examples.
    """
    indices = []
    permutations: dict[int, torch.Tensor] = {}
    for position in range(micro_step * global_batch, (micro_step + 1) * global_batch):
        epoch = position // num_examples
        if epoch not in permutations:
            gen = torch.Generator().manual_seed(seed * _SEED_STRIDE + epoch)
            permutations[epoch] = torch.randperm(num_examples, generator=gen)
        indices.append(int(permutations[epoch][position % num_examples]))
    return indices


def example_noise(
    shape: torch.Size, num_train_timesteps: int, seed: int, position: int
) -> tuple[torch.Tensor, int]:
    """Noise [F, C, h, w] and a timestep for the example at global `position`: a function of (seed, position) only."""
    gen = torch.Generator().manual_seed(seed * _SEED_STRIDE + position)
    noise = torch.randn(shape, generator=gen)
    timestep = int(torch.randint(0, num_train_timesteps, (1,), generator=gen))
    return noise, timestep


def micro_batch(
    data,
    config: AlignConfig,
    embeds: torch.Tensor,
    prompt_index: dict[str, int],
    micro_step: int,
    process_index: int,
    num_processes: int,
    num_train_timesteps: int,
    device,
) -> dict[str, torch.Tensor]:
    """This process's slice of the global batch of `micro_step`, with its noise and timesteps, on `device`."""
    per_device = config.train_batch_size
    global_batch = per_device * num_processes
    indices = batch_indices(len(data), global_batch, micro_step, config.seed)
    mine = range(process_index * per_device, (process_index + 1) * per_device)
    rows = {"latents": [], "rejected": [], "noise": [], "timesteps": [], "embeds": [], "rewards": []}
    for j in mine:
        index = indices[j]
        if isinstance(data, PreferenceLatents):
            chosen, rejected = data.load(index)
            rows["rejected"].append(rejected)
        else:
            chosen = data.load(index)
            rows["rewards"].append(data.rewards[index])
        noise, timestep = example_noise(
            chosen.shape, num_train_timesteps, config.seed, micro_step * global_batch + j
        )
        rows["latents"].append(chosen)
        rows["noise"].append(noise)
        rows["timesteps"].append(timestep)
        rows["embeds"].append(embeds[prompt_index[data.prompts[index]]])
    batch = {
        "latents": torch.stack(rows["latents"]),  # [b, F, C, h, w]
        "noise": torch.stack(rows["noise"]),  # [b, F, C, h, w]
        "timesteps": torch.tensor(rows["timesteps"], dtype=torch.long),  # [b]
        "embeds": torch.stack(rows["embeds"]),  # [b, L, D]
    }
    if rows["rejected"]:
        batch["rejected"] = torch.stack(rows["rejected"])  # [b, F, C, h, w]
    if rows["rewards"]:
        batch["rewards"] = torch.tensor(rows["rewards"], dtype=torch.float32)  # [b]
        # RWR normalises weights over the global batch, so N processes weight exactly like one
        batch["batch_rewards"] = torch.tensor(
            [data.rewards[i] for i in indices], dtype=torch.float32
        )  # [b * N]
    return {k: v.to(device) for k, v in batch.items()}
