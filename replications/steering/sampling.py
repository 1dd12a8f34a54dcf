"""Batched, KV-cached sampling of steered completions, with ActAdd's sampling settings.

ActAdd samples with TransformerLens's `generate` (temperature 1.0, top_p 0.3, freq_penalty 1.0):
`sample_logits` divides the logits by the temperature, subtracts `freq_penalty` times the
count of each token in the sequence so far (prompt and BOS included), keeps the smallest set of
most likely tokens whose probability reaches top_p (the token that crosses it included), and
samples from the renormalised rest. `sample_next` does the same for a batch in one pass:

- the frequency counts are kept as a [rows, vocab] tensor updated with `scatter_add_`;
- top-p looks at the `candidates` most likely tokens first (exact whenever they hold top_p of
  the probability, as they nearly always do at top_p 0.3 in a trained model), then at 16 times
  as many for the rows where they do not, and so on up to the whole vocabulary;
- the draw is an inverse-CDF lookup of a uniform number that belongs to the completion
  (`uniforms`: one per seed and step), so completion j of every condition sees the same random
  numbers (common random numbers across coefficients and methods) and does not depend on what
  else is in the batch.

`generate` runs every row of a batch (any mix of steering vectors) through one uncached prompt
pass, with `FrontSteering(once=True)` adding each row's vector to its front positions, then one
cached pass per new token. As `generate` with `stop_at_eos`, a row that has produced EOS keeps
producing EOS. `generate_reference` recomputes the whole sequence at every step (no cache,
vectors added at every pass): the tests check both give the same completions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from replications.steering.actadd import FrontSteering
from shared.activations import model_device
from shared.decode import StaticDecoder, decode_dtype

# How cached steps run: TransformerLens's cache, or the static decoder in fp32 or bf16.
Decoder = Literal["hooked", "static", "static-bf16"]


@dataclasses.dataclass(frozen=True)
class Sampler:
    temperature: float
    top_p: float
    freq_penalty: float
    candidates: int


def seed_uniforms(seeds: Int[Tensor, " rows"], n_steps: int) -> Float[Tensor, "rows steps"]:
    """One uniform number per step for each seed (its own generator: batch-independent)."""
    out = torch.empty(len(seeds), n_steps, dtype=torch.float64)
    for i, s in enumerate(seeds.tolist()):
        out[i] = torch.rand(n_steps, generator=torch.Generator().manual_seed(int(s)),
                            dtype=torch.float64)
    return out


def _inverse_cdf(
    probs: Float[Tensor, "rows k"], ids: Int[Tensor, "rows k"], u: Float[Tensor, " rows"]
) -> Int[Tensor, " rows"]:
    """Sample from unnormalised `probs` over `ids` (zeros never drawn) with uniforms `u`."""
    cdf = probs.double().cumsum(-1)
    target = (u.to(cdf) * cdf[:, -1]).unsqueeze(-1)
    idx = torch.searchsorted(cdf, target, right=True).clamp_max(probs.shape[-1] - 1)
    # searchsorted can land on a zero-probability tail entry only at the very end: step back.
    last_kept = (probs > 0).long().cumsum(-1).argmax(-1, keepdim=True)
    idx = torch.minimum(idx, last_kept)
    return ids.gather(-1, idx).squeeze(-1)


def _top_p_keep(sorted_probs: Float[Tensor, "rows k"], top_p: float) -> Tensor:
    """TransformerLens's rule on descending probabilities: keep until the cumulative sum
    exceeds top_p, the crossing token included."""
    cum = sorted_probs.cumsum(-1)
    remove = cum > top_p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    return ~remove


@torch.no_grad()
def sample_next(
    logits: Float[Tensor, "rows vocab"], counts: Float[Tensor, "rows vocab"],
    u: Float[Tensor, " rows"], s: Sampler,
) -> Int[Tensor, " rows"]:
    """One sampled token per row (see the module docstring)."""
    logits = logits.float() / s.temperature
    if s.freq_penalty > 0:
        logits = logits - s.freq_penalty * counts
    if s.top_p >= 1.0:
        probs = logits.softmax(-1)
        ids = torch.arange(logits.shape[-1], device=logits.device).expand_as(logits)
        return _inverse_cdf(probs, ids, u)
    lse = logits.logsumexp(-1, keepdim=True)
    vocab = logits.shape[-1]
    out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    rows = torch.arange(logits.shape[0], device=logits.device)
    k = min(s.candidates, vocab)
    while rows.numel():
        # The k most likely tokens decide the nucleus exactly when they hold more than top_p;
        # rows where they do not try 16x more, and finally the whole (sorted) vocabulary.
        top, ids = logits[rows].topk(k, dim=-1)  # descending
        probs = (top - lse[rows]).exp()
        done = (probs.sum(-1) > s.top_p) | (k == vocab)
        if done.any():
            p_done = probs[done]
            out[rows[done]] = _inverse_cdf(p_done * _top_p_keep(p_done, s.top_p), ids[done],
                                           u[rows[done]])
        rows = rows[~done]
        k = min(vocab, 16 * k)
    return out


def _token_counts(tokens: Int[Tensor, "rows pos"], vocab: int) -> Float[Tensor, "rows vocab"]:
    counts = torch.zeros(tokens.shape[0], vocab, device=tokens.device)
    return counts.scatter_add_(1, tokens, torch.ones_like(tokens, dtype=counts.dtype))


@dataclasses.dataclass(frozen=True)
class Generation:
    tokens: Int[Tensor, "rows new"]  # sampled tokens (EOS repeated after the first EOS)
    first_logits: Float[Tensor, "rows vocab"]  # logits of the first sampled position


@torch.no_grad()
def generate(
    model: Any, prompt: Int[Tensor, " pos"], vectors: Float[Tensor, "rows n d_model"],
    uniforms: Float[Tensor, "rows steps"], hook_name: str, sampler: Sampler, eos_id: int,
    on_step: Callable[[int, Tensor], None] | None = None, decoder: Decoder = "hooked",
) -> Generation:
    """Completions of `prompt` for every row, row b steered by `vectors[b]` (KV-cached)."""
    return generate_multi(model, prompt, [(hook_name, vectors)], uniforms, sampler, eos_id,
                          on_step, decoder)


@torch.no_grad()
def generate_multi(
    model: Any, prompt: Int[Tensor, " pos"],
    steering: list[tuple[str, Float[Tensor, "rows n d_model"]]],
    uniforms: Float[Tensor, "rows steps"], sampler: Sampler, eos_id: int,
    on_step: Callable[[int, Tensor], None] | None = None, decoder: Decoder = "hooked",
) -> Generation:
    """`generate` with vectors at several sites at once (rows steered at one site carry zero
    vectors at the others): e.g. one batch for a sweep over layers.

    `decoder`: "hooked" runs every step through the `HookedTransformer` with TransformerLens's
    KV cache; "static" (or "static-bf16") runs the prompt pass there and the cached steps
    through `shared.decode.StaticDecoder` (fp32 or bf16 weights and cache; a CUDA graph on GPU).
    """
    device = model_device(model)
    rows, steps = steering[0][1].shape[0], uniforms.shape[1]
    tokens = prompt.to(device).unsqueeze(0).expand(rows, -1).contiguous()
    counts = _token_counts(tokens, model.cfg.d_vocab)
    hooks = [(name, FrontSteering(v.to(device), once=True)) for name, v in steering]
    uniforms = uniforms.to(device)
    out = torch.empty(rows, steps, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    step_fn = _hooked_steps(model, rows, hooks) if decoder == "hooked" else \
        _static_steps(model, rows, tokens.shape[1] + steps, hooks, decoder)
    logits = step_fn(tokens)
    if any(h.calls != 1 for _, h in hooks):
        raise RuntimeError("a steering hook did not fire on the prompt pass")
    first = logits.float().cpu()
    for t in range(steps):
        nxt = sample_next(logits, counts, uniforms[:, t], sampler)
        nxt = torch.where(finished, torch.full_like(nxt, eos_id), nxt)
        finished |= nxt == eos_id
        out[:, t] = nxt
        counts.scatter_add_(1, nxt.unsqueeze(1), torch.ones(rows, 1, device=device))
        if on_step is not None:
            on_step(t, nxt)
        if t + 1 < steps:
            logits = step_fn(nxt.unsqueeze(1))
    if any(h.calls != 1 for _, h in hooks):
        raise RuntimeError("a steering hook fired during cached generation steps")
    return Generation(out.cpu(), first)


StepFn = Callable[[Int[Tensor, "rows pos"]], Float[Tensor, "rows vocab"]]


def _hooked_steps(model: Any, rows: int, hooks: list[tuple[str, Any]]) -> StepFn:
    """Prompt and steps through the HookedTransformer with TransformerLens's KV cache."""
    from transformer_lens import TransformerLensKeyValueCache

    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model_device(model), rows)

    def run(tokens: Tensor) -> Tensor:
        # An explicit all-ones mask: TransformerLens would otherwise infer one from pad tokens,
        # and GPT-2's pad token is its EOS (which completions may contain).
        with model.hooks(fwd_hooks=hooks):
            return model(tokens, past_kv_cache=cache,
                         attention_mask=torch.ones_like(tokens))[:, -1]
    return run


def _static_steps(model: Any, rows: int, max_len: int, hooks: list[tuple[str, Any]],
                  decoder: Decoder) -> StepFn:
    """The prompt through the HookedTransformer (with the hooks), steps through StaticDecoder."""
    precision = "bf16" if decoder == "static-bf16" else "fp32"
    dec = StaticDecoder(model, rows, max_len, decode_dtype(precision))

    def run(tokens: Tensor) -> Tensor:
        return dec.prefill(tokens, hooks) if dec.length == 0 else dec.step(tokens[:, 0])
    return run


@torch.no_grad()
def generate_reference(
    model: Any, prompt: Int[Tensor, " pos"], vectors: Float[Tensor, "rows n d_model"],
    uniforms: Float[Tensor, "rows steps"], hook_name: str, sampler: Sampler, eos_id: int,
) -> tuple[Generation, list[Tensor]]:
    """`generate` without a cache: the whole sequence (vectors at its front) at every step.

    Slow (quadratic); for tests. Also returns the logits of every step.
    """
    device = model_device(model)
    rows, steps = vectors.shape[0], uniforms.shape[1]
    seq = prompt.to(device).unsqueeze(0).expand(rows, -1).contiguous()
    hook = FrontSteering(vectors.to(device), once=False)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    step_logits = []
    with model.hooks(fwd_hooks=[(hook_name, hook)]):
        for t in range(steps):
            logits = model(seq)[:, -1].float()
            step_logits.append(logits.cpu())
            counts = _token_counts(seq, model.cfg.d_vocab)
            nxt = sample_next(logits, counts, uniforms[:, t].to(device), sampler)
            nxt = torch.where(finished, torch.full_like(nxt, eos_id), nxt)
            finished |= nxt == eos_id
            seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
    gen = Generation(seq[:, prompt.shape[0]:].cpu(), step_logits[0])
    return gen, step_logits


def completion_texts(tokenizer: Any, tokens: Int[Tensor, "rows new"], eos_id: int) -> list[str]:
    """Decoded completions, cut at the first EOS."""
    texts = []
    for row in tokens.tolist():
        if eos_id in row:
            row = row[: row.index(eos_id)]
        texts.append(tokenizer.decode(row))
    return texts
