"""The whole measurement on one model and one set of prompts: `run(model, rows, cfg)`.

Samples tokens, runs the full-context pass (per-layer mean + residuals at the samples), the
truncated pass (every context, batched), the random-pair baseline and the token categories,
and returns a `Harvest` (plus timings, kept out of the saved results so reruns are identical).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from replications.local_processing import harvest as H
from replications.local_processing.analysis import Harvest
from replications.local_processing.categories import CATEGORIES, categorise
from replications.local_processing.config import Config
from replications.local_processing.prompts import bos_of
from shared.activations import model_device
from shared.config import to_dict
from shared.lm import is_local_model


@dataclasses.dataclass(frozen=True)
class Timing:
    full_s: float
    truncated_s: float
    positions: dict[str, int]  # token positions run through the model, per pass
    n_samples: int

    @property
    def total_s(self) -> float:
        return self.full_s + self.truncated_s

    def summary(self) -> dict[str, float]:
        """Sampled tokens per second (both passes) and model positions per second."""
        positions = sum(self.positions.values())
        return {"seconds": self.total_s, "samples_per_s": self.n_samples / self.total_s,
                "positions_per_s": positions / self.total_s,
                "full_positions_per_s": self.positions["full"] / self.full_s,
                "truncated_positions_per_s": self.positions["truncated"] / self.truncated_s}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decoder(model) -> Any:
    """Token id -> its string as it appears in text (no clean-up of spaces before '.')."""
    tok = model.tokenizer
    if tok is None:
        return str
    return lambda i: tok.decode([i], clean_up_tokenization_spaces=False)


def run(
    model, rows: Int[Tensor, "prompts seq"], cfg: Config, model_name: str,
    progress: bool = True,
) -> tuple[Harvest, Timing]:
    """Harvest the centred cosines of every sampled token at every context and layer."""
    d, h = cfg.data, cfg.harvest
    bos = bos_of(rows, model.cfg.d_vocab)
    samples = H.sample_positions(rows.shape[0], rows.shape[1], d.samples_per_prompt,
                                 d.min_position, d.seed)
    dev = model_device(model)
    with H.matmul_precision(h.precision, dev):
        t0 = time.perf_counter()
        full = H.full_context_pass(model, rows, samples, h.batch_tokens, progress)
        _sync(dev)
        t1 = time.perf_counter()
        cos = H.truncated_cosines(model, rows, samples, full, h.contexts, h.layout,
                                  h.batch_tokens, bos, progress)
        _sync(dev)
        t2 = time.perf_counter()
    baseline = H.random_pair_baseline(full, samples.per_prompt)
    prompt, position = samples.prompt, samples.position
    token = rows[prompt, position].long()
    category, strings = categorise(token, decoder(model), cfg.categories.common_words)
    positions = H.positions_processed(rows.shape[0], rows.shape[1], len(samples), h.contexts,
                                      h.layout)
    info = {
        "model": model_name,
        "model_label": "Pythia-shaped stand-in" if is_local_model(model_name) else model_name,
        "n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model,
        "hook": "blocks.{layer}.hook_resid_post", "bos_id": bos,
        "n_prompts": rows.shape[0], "prompt_len": rows.shape[1], "n_tokens": len(samples),
        "n_mean_tokens": full.n_mean_tokens, "positions_processed": positions,
        "categories": list(CATEGORIES), "harvest": to_dict(h), "data": to_dict(d),
        "token_strings": {str(k): v for k, v in sorted(strings.items())},
    }
    result = Harvest(cos=cos, baseline=baseline, token=token, category=category,
                     prompt=prompt, position=position, mean_norm=full.mean.norm(dim=-1),
                     contexts=h.contexts, info=info)
    return result, Timing(t1 - t0, t2 - t1, positions, len(samples))
