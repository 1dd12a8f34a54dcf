"""Fast cached decoding for GPT-2-family `HookedTransformer`s: a preallocated (static) KV cache,
fused QKV weights in the decode precision, and on CUDA the one-token step captured as a CUDA
graph.

TransformerLens's own KV cache grows by concatenation (every step copies the whole cache) and
runs every hook point; a rollout of 50 tokens over 1024 rows of GPT-2 XL spends most of its time
there. ActAdd-style steering touches only the prompt pass: its hooks on `hook_resid_pre` run
inside the decoder's prompt pass (any other hook sends the prompt through the
`HookedTransformer`, whose keys and values are then copied into the cache), and every later
one-position step is a plain forward of the same weights, with no hooks to honour.

Supported: learned absolute positions, LayerNorm (`LN`) or its folded form (`LNPre`), attention
then MLP (not parallel), a GELU/ReLU MLP: GPT-2 and the steering stand-in. Anything else raises
`UnsupportedModel`, and callers keep TransformerLens's cache. `StaticDecoder.step` in fp32
equals `HookedTransformer`'s forward to float rounding (tests/integration/test_decode.py).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}


_RESID_PRE = re.compile(r"blocks\.(\d+)\.hook_resid_pre")


class UnsupportedModel(ValueError):
    """The model is outside the GPT-2 family this decoder implements."""


def check_supported(cfg: Any) -> None:
    """Raise `UnsupportedModel` naming the first setting the static decoder cannot reproduce."""
    wrong = [
        (cfg.positional_embedding_type != "standard",
         f"positional_embedding_type {cfg.positional_embedding_type!r}"),
        (cfg.normalization_type not in ("LN", "LNPre"),
         f"normalization_type {cfg.normalization_type!r}"),
        (bool(cfg.parallel_attn_mlp), "parallel attention and MLP"),
        (bool(cfg.attn_only), "attention-only"),
        (bool(getattr(cfg, "gated_mlp", False)), "gated MLP"),
        (cfg.act_fn not in ACTIVATIONS, f"act_fn {cfg.act_fn!r}"),
        (getattr(cfg, "n_key_value_heads", None) is not None, "grouped-query attention"),
        (bool(getattr(cfg, "use_attention_sinks", False)), "attention sinks"),
        (getattr(cfg, "attn_scores_soft_cap", -1.0) > 0, "attention soft cap"),
        (getattr(cfg, "output_logits_soft_cap", -1.0) > 0, "logit soft cap"),
        (bool(getattr(cfg, "use_local_attn", False)), "local attention"),
    ]
    for bad, what in wrong:
        if bad:
            raise UnsupportedModel(f"static decoding does not support {what}")


Affine = tuple[Tensor, Tensor] | None  # a LayerNorm's (w, b); None for LNPre


def _layer_norm(x: Tensor, affine: Affine, eps: float) -> Tensor:
    # TransformerLens's LayerNorm: centre, scale by the root mean square (in fp32), then affine.
    xf = x.float()
    xf = xf - xf.mean(-1, keepdim=True)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    out = xf.to(x.dtype)
    return out if affine is None else out * affine[0] + affine[1]


@dataclasses.dataclass(frozen=True)
class _Layer:
    """One block's weights in the decode dtype, QKV fused as [d_model, 3 * heads * d_head]."""

    ln1: Affine
    ln2: Affine
    w_qkv: Tensor
    b_qkv: Tensor
    w_o: Tensor
    b_o: Tensor
    w_in: Tensor
    b_in: Tensor
    w_out: Tensor
    b_out: Tensor
    scale: float  # 1 / attention scale


class StaticDecoder:
    """One-token decode steps for `rows` sequences of at most `max_len` tokens.

    Use: `logits = dec.prefill(tokens, hooks)` once (the prompt, through the model with hooks),
    then `logits = dec.step(next_tokens)` per new token. Logits come back in fp32.
    """

    def __init__(self, model: Any, rows: int, max_len: int, dtype: torch.dtype = torch.float32,
                 cuda_graph: bool = True) -> None:
        cfg = model.cfg
        check_supported(cfg)
        if max_len > cfg.n_ctx:
            raise ValueError(f"max_len {max_len} exceeds the model's context {cfg.n_ctx}")
        self.model, self.cfg, self.rows, self.max_len, self.dtype = model, cfg, rows, max_len, dtype
        self.device = model.W_E.device
        self.eps, self.act = cfg.eps, ACTIVATIONS[cfg.act_fn]
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head

        def cast(t: Tensor) -> Tensor:
            return t.detach().to(self.device, dtype).contiguous()

        def ln(mod: Any) -> Affine:
            return (cast(mod.w), cast(mod.b)) if hasattr(mod, "w") else None

        self.layers: list[_Layer] = []
        for block in model.blocks:
            a = block.attn
            w_qkv = torch.cat([einops.rearrange(w, "h d dh -> d (h dh)")
                               for w in (a.W_Q, a.W_K, a.W_V)], dim=1)
            b_qkv = torch.cat([b.flatten() for b in (a.b_Q, a.b_K, a.b_V)])
            self.layers.append(_Layer(
                ln1=ln(block.ln1), ln2=ln(block.ln2), w_qkv=cast(w_qkv), b_qkv=cast(b_qkv),
                w_o=cast(einops.rearrange(a.W_O, "h dh d -> (h dh) d")), b_o=cast(a.b_O),
                w_in=cast(block.mlp.W_in), b_in=cast(block.mlp.b_in),
                w_out=cast(block.mlp.W_out), b_out=cast(block.mlp.b_out),
                scale=1.0 / float(a.attn_scale),
            ))
        self.ln_final = ln(model.ln_final)
        self.W_E, self.W_pos = cast(model.W_E), cast(model.W_pos)
        self.W_U, self.b_U = cast(model.W_U), cast(model.b_U)
        shape = (cfg.n_layers, rows, cfg.n_heads, max_len, cfg.d_head)
        self.k = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=dtype, device=self.device)
        # The step's inputs live in fixed tensors so a captured graph can be replayed.
        self.token = torch.zeros(rows, dtype=torch.long, device=self.device)
        self.pos = torch.zeros((), dtype=torch.long, device=self.device)
        self.length = 0
        self.use_graph = cuda_graph and self.device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_out: Tensor | None = None

    @torch.no_grad()
    def prefill(self, tokens: Int[Tensor, "rows pos"],
                fwd_hooks: Sequence[tuple[str, Callable[..., Any]]] = ()) -> Float[Tensor, "rows vocab"]:
        """Run the prompt with `fwd_hooks`, fill the cache, return the last position's logits.

        Hooks on `blocks.{i}.hook_resid_pre` (ActAdd's sites) run inside the decoder's own
        forward, in its precision; any other hook sends the prompt through the
        HookedTransformer instead, reading its keys and values into the cache."""
        n = tokens.shape[1]
        if tokens.shape[0] != self.rows or n >= self.max_len:
            raise ValueError(f"prompt of shape {tuple(tokens.shape)} does not fit "
                             f"{self.rows} rows of at most {self.max_len} tokens")
        at_layer: dict[int, list[Callable[..., Any]]] = {}
        for name, fn in fwd_hooks:
            site = _RESID_PRE.fullmatch(name)
            if site is None:
                return self._prefill_hooked(tokens, fwd_hooks)
            at_layer.setdefault(int(site.group(1)), []).append(fn)
        x = self.W_E[tokens] + self.W_pos[:n]
        for i in range(len(self.layers)):
            for fn in at_layer.get(i, []):
                out = fn(x, None)
                x = x if out is None else out
            q, k, v = self._qkv(i, x)
            self.k[i, :, :, :n] = k
            self.v[i, :, :, :n] = v
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               scale=self.layers[i].scale)
            x = self._finish(i, x, z)
        self.length = n
        return self._logits(x[:, -1])

    def _prefill_hooked(self, tokens: Int[Tensor, "rows pos"],
                        fwd_hooks: Sequence[tuple[str, Callable[..., Any]]]) -> Tensor:
        n = tokens.shape[1]

        def keep(buf: Tensor, layer: int) -> Callable[..., None]:
            def hook(x: Tensor, hook: Any = None) -> None:
                buf[layer, :, :, :n] = einops.rearrange(x, "r p h dh -> r h p dh").to(buf.dtype)
            return hook

        capture = [(f"blocks.{i}.attn.hook_{name}", keep(buf, i))
                   for i in range(self.cfg.n_layers) for name, buf in (("k", self.k), ("v", self.v))]
        # Hooks run in order: the caller's (steering) first, then the ones reading k and v.
        with self.model.hooks(fwd_hooks=list(fwd_hooks) + capture):
            logits = self.model(tokens, attention_mask=torch.ones_like(tokens))[:, -1]
        self.length = n
        return logits.float()

    @torch.no_grad()
    def step(self, token: Int[Tensor, " rows"]) -> Float[Tensor, "rows vocab"]:
        """Append `token` to every row and return the logits at the new position."""
        if self.length >= self.max_len:
            raise ValueError(f"the cache holds at most {self.max_len} tokens")
        self.token.copy_(token)
        self.pos.fill_(self.length)
        self.length += 1
        if not self.use_graph:
            return self._step()
        if self.graph is None:
            self._capture()
        assert self.graph is not None and self.graph_out is not None
        self.graph.replay()
        return self.graph_out

    def _capture(self) -> None:
        # Warm-up on a side stream (allocator and cuBLAS workspaces), then capture one step; the
        # cache writes of both are overwritten by the replays at the same position.
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.graph_out = self._step()

    def _qkv(self, i: int, x: Float[Tensor, "rows pos d"]) -> tuple[Tensor, Tensor, Tensor]:
        p = self.layers[i]
        h = _layer_norm(x, p.ln1, self.eps)
        qkv = torch.matmul(h, p.w_qkv) + p.b_qkv
        q, k, v = einops.rearrange(qkv, "r pos (three h dh) -> three r h pos dh", three=3,
                                   h=self.n_heads)
        return q, k, v

    def _finish(self, i: int, x: Float[Tensor, "rows pos d"],
                z: Float[Tensor, "rows h pos dh"]) -> Float[Tensor, "rows pos d"]:
        """Attention output projection and the MLP, each added to the residual."""
        p = self.layers[i]
        x = x + torch.matmul(einops.rearrange(z, "r h pos dh -> r pos (h dh)"), p.w_o) + p.b_o
        h = _layer_norm(x, p.ln2, self.eps)
        return x + torch.matmul(self.act(torch.matmul(h, p.w_in) + p.b_in), p.w_out) + p.b_out

    def _logits(self, x: Float[Tensor, "rows d"]) -> Float[Tensor, "rows vocab"]:
        h = _layer_norm(x, self.ln_final, self.eps)
        return torch.addmm(self.b_U, h, self.W_U).float()

    def _step(self) -> Float[Tensor, "rows vocab"]:
        x = (self.W_E[self.token] + self.W_pos.index_select(0, self.pos.view(1))).unsqueeze(1)
        # Key positions 0..pos are visible (the cache beyond them holds zeros or stale values).
        visible = torch.arange(self.max_len, device=self.device) <= self.pos
        mask = visible.view(1, 1, 1, self.max_len)
        for i in range(len(self.layers)):
            q, k, v = self._qkv(i, x)
            self.k[i].index_copy_(2, self.pos.view(1), k)
            self.v[i].index_copy_(2, self.pos.view(1), v)
            z = F.scaled_dot_product_attention(q, self.k[i], self.v[i], attn_mask=mask,
                                               scale=self.layers[i].scale)
            x = self._finish(i, x, z)
        return self._logits(x[:, 0])


def decode_dtype(precision: str) -> torch.dtype:
    """The decoder's weight and cache dtype for a precision name (fp32 or bf16)."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"decode precision must be fp32 or bf16, got {precision!r}")
    return dtypes[precision]

