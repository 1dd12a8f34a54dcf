"""Compiling a RASP program with tracr and converting it to a TransformerLens HookedTransformer.

`compile_program` builds one of tracr's library programs with every variable named and compiles
it (residual labels cleaned of tracr's process-global counters); `convert_to_hooked_transformer`
copies the compiled Haiku weights into a `HookedTransformer` (no LayerNorm, ReLU MLPs, the
attention mask tracr compiled with). tracr, haiku and jax are imported lazily, inside the
functions, and jax is kept on the CPU; the check of the result is in tracr_check.py.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import einops
import numpy as np
import torch
from torch import Tensor

from replications.toy_models.tracr_models import (
    BOS,
    PAD,
    TracrConfig,
    build_hooked_transformer,
    clean_direction_name,
    parse_residual_label,
)
from shared.config import check

# ---------------------------------------------------------------------------------------------
# Compiling (tracr / jax imported lazily).


def _use_cpu_jax() -> None:
    # Compiling and checking are tiny; keep jax off any accelerator (and its memory). Tracr runs
    # its ops eagerly, so XLA compiles ~100 tiny kernels: cheap optimisation levels save ~30%.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    )


def make_program(name: str, cfg: TracrConfig) -> Any:
    """The RASP program `name`, built from tracr's library with every variable named."""
    _use_cpu_jax()
    from tracr.compiler import lib
    from tracr.rasp import rasp

    if name == "reverse":
        return lib.make_reverse(rasp.tokens).named("reverse")
    if name == "sort":
        # Keys made unique by adding index / max_seq_len (tracr's non-unique sort).
        return lib.make_sort(
            rasp.tokens, rasp.tokens, max_seq_len=cfg.max_seq_len, min_key=1
        ).named("sort")
    if name == "frac_prevs":
        is_target = (rasp.tokens == cfg.frac_prevs_token).named(f"is_{cfg.frac_prevs_token}")
        return lib.make_frac_prevs(is_target).named("frac_prevs")
    if name == "hist":
        return lib.make_hist().named("hist")
    if name == "length":
        return lib.make_length().named("length")
    raise ValueError(f"unknown program {name!r}")


def _label_to_name(program: Any) -> dict[str, str]:
    """Map every expression label in the program graph to its plain name."""
    out: dict[str, str] = {}
    stack, seen = [program], set()
    while stack:
        expr = stack.pop()
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        out[expr.label] = expr.name
        stack.extend(expr.children)
    names = list(out.values())
    dupes = {n for n in names if names.count(n) > 1 and n not in ("tokens", "indices")}
    # Unnamed helpers share default names ('map', 'select'); keep their labels then.
    return {lab: (lab if name in dupes else name) for lab, name in out.items()}


@dataclasses.dataclass
class Compiled:
    """A compiled program: tracr's assembled model plus what we need to convert and check it."""

    name: str
    program: Any
    assembled: Any
    residual_labels: tuple[str, ...]


def compile_program(name: str, cfg: TracrConfig) -> Compiled:
    """Compile library program `name` with tracr over `cfg.vocab` and `cfg.max_seq_len`."""
    from tracr.compiler import compiling

    program = make_program(name, cfg)
    assembled = compiling.compile_rasp_to_model(
        program, vocab=set(cfg.vocab), max_seq_len=cfg.max_seq_len, causal=cfg.causal,
        compiler_bos=BOS, compiler_pad=PAD, mlp_exactness=cfg.mlp_exactness,
    )
    label_map = _label_to_name(program)
    labels = []
    for raw in assembled.residual_labels:
        var, value = parse_residual_label(raw)
        clean = clean_direction_name(var, label_map)
        labels.append(clean if value is None else f"{clean}:{value}")
    check(len(set(labels)) == len(labels), f"{name}: residual labels are not unique")
    return Compiled(name, program, assembled, tuple(labels))


def _np(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _unembed_matrix(compiled: Compiled) -> np.ndarray:
    """Tracr's unembedding as a [d_model, n_out] matrix (applied to the identity)."""
    import haiku as hk
    import jax.numpy as jnp

    assembled = compiled.assembled
    d_model = len(compiled.residual_labels)

    @hk.without_apply_rng
    @hk.transform
    def unembed(x):  # type: ignore[no-untyped-def]
        return assembled.get_compiled_model().unembed(x, use_unembed_argmax=False)

    mat = _np(unembed.apply(assembled.params, jnp.eye(d_model)))
    return mat.reshape(d_model, -1)


def convert_to_hooked_transformer(compiled: Compiled) -> tuple[Any, dict[str, Any], np.ndarray]:
    """Build a HookedTransformer with the compiled weights; returns (model, tl_config, W_U).

    Attention is causal exactly when tracr compiled the program causally (its model config's
    `causal`); anything in the config this conversion does not reproduce is refused."""
    asm = compiled.assembled
    params = {k: {p: _np(v) for p, v in d.items()} for k, d in asm.params.items()}
    mc = asm.model_config
    check(not mc.layer_norm, f"{compiled.name}: tracr model with layer norm is not supported")
    import jax

    check(mc.activation_function is jax.nn.relu,
          f"{compiled.name}: tracr MLP activation {mc.activation_function!r} is not supported")
    d_model = len(compiled.residual_labels)
    w_u = _unembed_matrix(compiled)
    n_layers = mc.num_layers
    mlp_zero = all(
        not params[f"transformer/layer_{l}/mlp/{lin}"]["w"].any()
        for l in range(n_layers) for lin in ("linear_1", "linear_2")
    )
    tl_config: dict[str, Any] = dict(
        n_layers=n_layers, d_model=d_model, d_head=mc.key_size, n_heads=mc.num_heads,
        d_mlp=None if mlp_zero else mc.mlp_hidden_size, d_vocab=params["token_embed"][
            "embeddings"].shape[0], d_vocab_out=w_u.shape[1],
        n_ctx=params["pos_embed"]["embeddings"].shape[0], act_fn="relu",
        normalization_type=None, attn_only=mlp_zero,
        attention_dir="causal" if mc.causal else "bidirectional",
        positional_embedding_type="standard", default_prepend_bos=False,
        original_architecture="tracr", device="cpu", seed=0, model_name=f"tracr-{compiled.name}",
    )
    model = build_hooked_transformer(tl_config)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    sd: dict[str, Tensor] = {
        "embed.W_E": t(params["token_embed"]["embeddings"]),
        "pos_embed.W_pos": t(params["pos_embed"]["embeddings"]),
        "unembed.W_U": t(w_u),
        "unembed.b_U": torch.zeros(w_u.shape[1]),
    }
    h = mc.num_heads
    for l in range(n_layers):
        pre = f"transformer/layer_{l}"
        for tl_name, tr_name in (("Q", "query"), ("K", "key"), ("V", "value")):
            p = params[f"{pre}/attn/{tr_name}"]
            sd[f"blocks.{l}.attn.W_{tl_name}"] = t(einops.rearrange(
                p["w"], "d_model (head d_head) -> head d_model d_head", head=h))
            sd[f"blocks.{l}.attn.b_{tl_name}"] = t(einops.rearrange(
                p["b"], "(head d_head) -> head d_head", head=h))
        p = params[f"{pre}/attn/linear"]
        sd[f"blocks.{l}.attn.W_O"] = t(einops.rearrange(
            p["w"], "(head d_head) d_model -> head d_head d_model", head=h))
        sd[f"blocks.{l}.attn.b_O"] = t(p["b"])
        if not mlp_zero:
            sd[f"blocks.{l}.mlp.W_in"] = t(params[f"{pre}/mlp/linear_1"]["w"])
            sd[f"blocks.{l}.mlp.b_in"] = t(params[f"{pre}/mlp/linear_1"]["b"])
            sd[f"blocks.{l}.mlp.W_out"] = t(params[f"{pre}/mlp/linear_2"]["w"])
            sd[f"blocks.{l}.mlp.b_out"] = t(params[f"{pre}/mlp/linear_2"]["b"])
    missing, unexpected = model.load_state_dict(sd, strict=False)
    check(not unexpected, f"unexpected state-dict keys {unexpected}")
    # Only non-learned buffers (attention masks) may be left at their built values.
    check(all(k.endswith(("mask", "IGNORE")) for k in missing), f"unset weights {missing}")
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, tl_config, w_u


__all__ = ["Compiled", "compile_program", "convert_to_hooked_transformer", "make_program"]
