"""Residual streams with the full context and with the context cut to the most recent tokens.

For a token at position p of a prompt (a row of tokens with BOS first), the full-context residual
is read at p after every block (`blocks.{l}.hook_resid_post`, i.e. after attention and MLP);
the truncated residual for context c is read at the last position of [BOS, x_{p-c+1}, ..., x_p]
(c tokens, the token itself included, plus a BOS: c + 1 tokens in all, as in the write-up).
Both are centred with one mean per layer, taken over every non-BOS position of the prompts'
full-context runs, and compared by cosine similarity.

Everything runs in batches: the full-context pass takes many prompts per forward and gathers the
sampled positions of each; the truncated pass takes every truncated variant of many sampled
tokens per forward, in one of two layouts:

- `by_length`: one forward per context length over a chunk of tokens, [chunk, c + 1] tokens,
  read at the last position. No padding, so no wasted compute (65 positions per sampled token
  for contexts 1..10).
- `padded`: all contexts of a chunk of tokens in one forward, [chunk x contexts, 11] tokens
  right-padded after each variant and read at position c. The causal mask keeps the padding out
  of position c, so the result is the same; it computes 110 positions per sampled token.

The forward pass stops after the last block (`stop_at_layer`): the unembedding is never run.
`run(model, rows, cfg, name)` is the whole stage: samples, both passes, the random-pair
baseline and the token categories, returned as a `Harvest` (timings kept apart, so reruns of the
saved results are identical).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from replications.local_processing.analysis import Harvest
from replications.local_processing.categories import CATEGORIES, categorise
from replications.local_processing.config import Config, Layout, Precision
from replications.local_processing.prompts import bos_of
from shared.activations import model_device
from shared.config import check, to_dict
from shared.lm import is_local_model


def resid_hook(layer: int) -> str:
    """The residual stream after block `layer` (after its attention and MLP)."""
    return f"blocks.{layer}.hook_resid_post"


@dataclasses.dataclass(frozen=True)
class Samples:
    """Sampled tokens: `per_prompt` distinct positions of every prompt, in increasing order."""

    positions: Int[Tensor, "prompts per_prompt"]

    @property
    def per_prompt(self) -> int:
        return self.positions.shape[1]

    @property
    def prompt(self) -> Int[Tensor, " n"]:
        return torch.arange(self.positions.shape[0]).repeat_interleave(self.per_prompt)

    @property
    def position(self) -> Int[Tensor, " n"]:
        return self.positions.flatten()

    def __len__(self) -> int:
        return self.positions.numel()


def sample_positions(
    n_prompts: int, prompt_len: int, per_prompt: int, min_position: int, seed: int
) -> Samples:
    """`per_prompt` distinct positions in [min_position, prompt_len) of each prompt, seeded."""
    span = prompt_len - min_position
    check(0 < per_prompt <= span,
          f"samples_per_prompt ({per_prompt}) must lie in [1, prompt_len - min_position = {span}]")
    gen = torch.Generator().manual_seed(seed)
    picks = torch.rand(n_prompts, span, generator=gen).argsort(dim=1)[:, :per_prompt]
    return Samples(picks.sort(dim=1).values + min_position)


def truncated_tokens(
    rows: Int[Tensor, "prompts seq"], prompt: Int[Tensor, " n"], position: Int[Tensor, " n"],
    context: int, bos: int,
) -> Int[Tensor, "n ctx_plus_bos"]:
    """[BOS, x_{p-c+1}, ..., x_p] for each sampled (prompt, p): c tokens after a BOS."""
    check(bool((position >= context).all()),
          f"a sampled position is below context {context}: the truncation would reach the BOS")
    idx = position[:, None] + torch.arange(-context + 1, 1)
    body = rows[prompt[:, None], idx].long()
    return torch.cat([torch.full((len(prompt), 1), bos, dtype=torch.long), body], dim=1)


def padded_truncations(
    rows: Int[Tensor, "prompts seq"], prompt: Int[Tensor, " n"], position: Int[Tensor, " n"],
    contexts: tuple[int, ...], bos: int, pad: int,
) -> tuple[Int[Tensor, "n_contexts width"], Int[Tensor, " n_contexts"]]:
    """Every truncated variant of every token in one right-padded batch, sample-major.

    Row s * len(contexts) + j is token s with context contexts[j]; it is read at position
    contexts[j] (its last real token). Returns the tokens and the read positions.
    """
    width = max(contexts) + 1
    out = torch.full((len(prompt), len(contexts), width), pad, dtype=torch.long)
    for j, c in enumerate(contexts):  # at most a handful of lengths, each vectorised
        out[:, j, : c + 1] = truncated_tokens(rows, prompt, position, c, bos)
    read = torch.tensor(contexts, dtype=torch.long).repeat(len(prompt))
    return einops.rearrange(out, "n c w -> (n c) w"), read


@contextlib.contextmanager
def matmul_precision(precision: Precision, device: torch.device) -> Iterator[None]:
    """TF32 tensor-core matmuls inside the block when asked for on CUDA."""
    if precision == "tf32" and device.type == "cuda":
        from shared.sae_train import tf32_matmuls

        with tf32_matmuls(True):
            yield
    else:
        yield


@torch.no_grad()
def block_residuals(
    model, tokens: Int[Tensor, "rows ctx"], read_pos: Int[Tensor, "rows k"],
    sum_from: int | None = None,
) -> tuple[Float[Tensor, "rows k layers d"], Float[Tensor, "layers d"] | None]:
    """The residual after every block at `read_pos` of each row, in one forward pass.

    With `sum_from`, also the float64 sum over rows and positions >= sum_from of every block's
    residual (for the per-layer mean). Results stay on the model's device, as float32.
    """
    n_layers = model.cfg.n_layers
    dev = model_device(model)
    tokens, read_pos = tokens.to(dev), read_pos.to(dev)
    row = torch.arange(tokens.shape[0], device=dev)[:, None]
    got: list[Tensor | None] = [None] * n_layers
    sums: list[Tensor | None] = [None] * n_layers

    def hook(layer: int):
        def grab(module: torch.nn.Module, inputs: object, out: Tensor) -> None:
            got[layer] = out[row, read_pos].float()
            if sum_from is not None:
                sums[layer] = out[:, sum_from:].double().sum(dim=(0, 1))
        return grab

    handles = [model.hook_dict[resid_hook(layer)].register_forward_hook(hook(layer))
               for layer in range(n_layers)]
    try:
        # Right padding: no attention mask (padded rows are only read before their padding).
        model(tokens, stop_at_layer=n_layers, padding_side="right")
    finally:
        for handle in handles:
            handle.remove()
    acts = einops.rearrange(torch.stack(got), "layers rows k d -> rows k layers d")
    return acts, (torch.stack(sums) if sum_from is not None else None)


def centred_cosine(
    a: Float[Tensor, "*batch layers d"], b: Float[Tensor, "*batch layers d"],
    mean: Float[Tensor, "layers d"],
) -> Float[Tensor, "*batch layers"]:
    """Cosine similarity of a - mean and b - mean (one mean per layer).

    In float32 (ample for a cosine; float64 copies of [tokens, 32, 2560] chunks would double
    the GPU memory of the paper run).
    """
    a, b = a.float() - mean.float(), b.float() - mean.float()
    denom = (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)
    return (a * b).sum(dim=-1) / denom


@dataclasses.dataclass(frozen=True)
class FullContext:
    """The full-context pass: per-layer mean and the residuals at the sampled tokens."""

    mean: Float[Tensor, "layers d"]  # over every non-BOS position of every prompt, float64
    resid: Float[Tensor, "n layers d"]  # at the sampled tokens (sample order), float32, on CPU
    n_mean_tokens: int


def full_context_pass(
    model, rows: Int[Tensor, "prompts seq"], samples: Samples, batch_tokens: int,
    progress: bool = True,
) -> FullContext:
    """One forward per chunk of prompts: accumulate the mean, gather the sampled positions."""
    n_prompts, seq = rows.shape
    per_batch = max(1, batch_tokens // seq)
    total, parts = None, []
    starts = range(0, n_prompts, per_batch)
    for start in tqdm(starts, desc="full context", disable=not progress):
        chunk = slice(start, start + per_batch)
        acts, sums = block_residuals(model, rows[chunk].long(), samples.positions[chunk],
                                     sum_from=1)
        total = sums if total is None else total + sums
        parts.append(einops.rearrange(acts, "p k layers d -> (p k) layers d").cpu())
    n_mean = n_prompts * (seq - 1)
    return FullContext(mean=(total / n_mean).cpu(), resid=torch.cat(parts), n_mean_tokens=n_mean)


def truncated_cosines(
    model, rows: Int[Tensor, "prompts seq"], samples: Samples, full: FullContext,
    contexts: tuple[int, ...], layout: Layout, batch_tokens: int, bos: int,
    progress: bool = True,
) -> Float[Tensor, "n contexts layers"]:
    """Centred cosine between each sampled token's full-context and truncated residuals."""
    prompt, position = samples.prompt, samples.position
    n = len(samples)
    out = torch.empty(n, len(contexts), model.cfg.n_layers)
    dev = model_device(model)
    mean = full.mean.to(dev)
    if layout == "by_length":
        jobs = [(j, c, max(1, batch_tokens // (c + 1))) for j, c in enumerate(contexts)]
        steps = sum(-(-n // size) for _, _, size in jobs)
        bar = tqdm(total=steps, desc="truncated (by length)", disable=not progress)
        for j, c, size in jobs:
            for start in range(0, n, size):
                s = slice(start, start + size)
                toks = truncated_tokens(rows, prompt[s], position[s], c, bos)
                read = torch.full((toks.shape[0], 1), c, dtype=torch.long)
                acts, _ = block_residuals(model, toks, read)
                out[s, j] = centred_cosine(acts[:, 0], full.resid[s].to(dev), mean).cpu()
                bar.update()
        bar.close()
    else:
        size = max(1, batch_tokens // (len(contexts) * (max(contexts) + 1)))
        for start in tqdm(range(0, n, size), desc="truncated (padded)", disable=not progress):
            s = slice(start, start + size)
            toks, read = padded_truncations(rows, prompt[s], position[s], contexts, bos, bos)
            acts, _ = block_residuals(model, toks, read[:, None])
            acts = einops.rearrange(acts[:, 0], "(m c) layers d -> m c layers d",
                                    c=len(contexts))
            out[s] = centred_cosine(acts, full.resid[s, None].to(dev), mean).cpu()
    return out


def random_pair_baseline(
    full: FullContext, per_prompt: int
) -> Float[Tensor, "n layers"]:
    """Centred cosine of each token's full-context residual with a token of another prompt.

    Token i is paired with token i + per_prompt (the same slot of the next prompt, cyclically):
    what the cosine is for residuals that share nothing but the layer.
    """
    other = full.resid.roll(-per_prompt, dims=0)
    return centred_cosine(full.resid, other, full.mean)


def positions_processed(n_prompts: int, prompt_len: int, n_samples: int,
                        contexts: tuple[int, ...], layout: Layout) -> dict[str, int]:
    """Token positions each pass runs through the model (padding included)."""
    if layout == "by_length":
        trunc = n_samples * sum(c + 1 for c in contexts)
    else:
        trunc = n_samples * len(contexts) * (max(contexts) + 1)
    return {"full": n_prompts * prompt_len, "truncated": trunc}

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
    samples = sample_positions(rows.shape[0], rows.shape[1], d.samples_per_prompt,
                                 d.min_position, d.seed)
    dev = model_device(model)
    with matmul_precision(h.precision, dev):
        t0 = time.perf_counter()
        full = full_context_pass(model, rows, samples, h.batch_tokens, progress)
        _sync(dev)
        t1 = time.perf_counter()
        cos = truncated_cosines(model, rows, samples, full, h.contexts, h.layout,
                                  h.batch_tokens, bos, progress)
        _sync(dev)
        t2 = time.perf_counter()
    baseline = random_pair_baseline(full, samples.per_prompt)
    prompt, position = samples.prompt, samples.position
    token = rows[prompt, position].long()
    category, strings = categorise(token, decoder(model), cfg.categories.common_words)
    positions = positions_processed(rows.shape[0], rows.shape[1], len(samples), h.contexts,
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
