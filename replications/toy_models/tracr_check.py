"""Checking a converted Tracr model against tracr's own model and against the RASP program.

`check_against_tracr` compares the converted `HookedTransformer` with tracr's forward pass on
every input of the domain (logits, residual stream after every sublayer, decoded outputs) and
with the RASP program's own outputs; `perturbed_copy` / `control_rasp_agreement` are the
negative control (the same agreement for a copy with noisy weights must fall below exact).
`compile_and_convert` is the compile stage end to end: compile and convert (tracr_convert),
check, and return the model, its metadata and the domain with its ground truth.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from replications.toy_models.tracr_convert import (
    Compiled,
    _np,
    compile_program,
    convert_to_hooked_transformer,
)
from replications.toy_models.tracr_models import (
    PAD,
    Domain,
    TracrConfig,
    TracrModelInfo,
    encode_domain,
    enumerate_domain,
    masked_mean,
    parse_residual_label,
    residual_stack,
    run_converted,
)

# Negative control of the conversion check: noise of a tenth of each weight matrix's RMS, far
# above float error and far below the weights (a conversion slightly wrong everywhere).
CONTROL_NOISE = 0.1


def rasp_ground_truth(
    compiled: Compiled, domain: Sequence[Sequence[int]], output_values: Sequence[Any],
    n_pos: int,
) -> tuple[Int[Tensor, "n pos"], Float[Tensor, "n pos"]]:
    """Evaluate the RASP program itself on every input: class ids and numerical values."""
    value_to_id = {v: i for i, v in enumerate(output_values)}
    ids = torch.full((len(domain), n_pos), -1, dtype=torch.long)
    vals = torch.zeros(len(domain), n_pos)
    for row, seq in enumerate(domain):
        out = compiled.program(list(seq))
        for i, v in enumerate(out):
            if output_values:
                ids[row, i + 1] = value_to_id[v]
            else:
                vals[row, i + 1] = float(v)
    return ids, vals


def _tracr_forward(
    compiled: Compiled, tokens: Int[Tensor, "batch pos"], pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tracr's own model on a padded batch: residuals [site, batch, pos, d] and final residual.

    Uses tracr's `CompiledTransformerModel` with its `pad_token` set, i.e. tracr's own key
    masking, so one jax call (one trace) covers every length.
    """
    import haiku as hk
    import jax
    import jax.numpy as jnp

    asm = compiled.assembled

    @hk.without_apply_rng
    @hk.transform
    def forward(ids):  # type: ignore[no-untyped-def]
        net = asm.get_compiled_model()
        net.pad_token = pad_id
        return net(ids, use_dropout=False)

    # One jitted program instead of one XLA compilation per eager op.
    out = jax.jit(forward.apply)(asm.params, jnp.asarray(tokens.numpy()))
    tr = out.transformer_output
    residuals = np.stack([_np(tr.input_embeddings)] + [_np(r) for r in tr.residuals])
    return residuals, _np(tr.output)


def check_against_tracr(
    compiled: Compiled, model: Any, w_u: np.ndarray, input_tokens: Sequence[Any],
    categorical: bool, domain: Sequence[Sequence[int]], max_seq_len: int,
    target_ids: Tensor, target_values: Tensor, numerical_atol: float,
) -> dict[str, Any]:
    """Compare the converted model with tracr's model on every input in `domain`.

    Compared at every real position: logits (final residual @ W_U), the residual stream after
    the embedding and every sublayer, decoded outputs (at output positions), and agreement of
    the converted model with the RASP program itself.
    """
    token_to_id = {tok: i for i, tok in enumerate(input_tokens)}
    tokens, out_mask = encode_domain(domain, token_to_id, max_seq_len)
    pad_id = token_to_id[PAD]
    real = tokens != pad_id
    with torch.no_grad():
        logits = run_converted(model, tokens, pad_id)
        resid = residual_stack(model, tokens, pad_id)
    tr_resid_np, tr_out = _tracr_forward(compiled, tokens, pad_id)
    tr_resid = torch.from_numpy(tr_resid_np)
    if model.cfg.attn_only:
        # Tracr lists the residual after every attention and (all-zero) MLP sublayer; the
        # attention-only conversion has no MLP hooks, so keep input + after each attention.
        tr_resid = tr_resid[[0] + [1 + 2 * l for l in range(model.cfg.n_layers)]]
    tracr_logits = torch.from_numpy(tr_out @ w_u)
    logit_diff = (logits - tracr_logits).abs().amax(-1)
    resid_diff = (resid - tr_resid).abs().amax(dim=(0, -1))
    if categorical:
        agree = logits.argmax(-1) == tracr_logits.argmax(-1)
    else:
        agree = (logits[..., 0] - tracr_logits[..., 0]).abs() <= numerical_atol
    rasp_agree = agrees_with_rasp(logits, categorical, target_ids, target_values, numerical_atol)
    return {
        "n_inputs": len(domain),
        "n_output_positions": int(out_mask.sum().item()),
        "max_abs_diff_logits": logit_diff[real].max().item(),
        "max_abs_diff_residual": resid_diff[real].max().item(),
        "decoded_agreement": masked_mean(agree, out_mask),
        "rasp_agreement": masked_mean(rasp_agree, out_mask),
        "numerical_atol": numerical_atol,
    }


def agrees_with_rasp(
    logits: Float[Tensor, "n pos n_out"], categorical: bool, target_ids: Int[Tensor, "n pos"],
    target_values: Float[Tensor, "n pos"], numerical_atol: float,
) -> Bool[Tensor, "n pos"]:
    """Whether each decoded output equals the RASP program's own output (argmax, or within
    `numerical_atol` for a numerical output)."""
    if categorical:
        return logits.argmax(-1) == target_ids
    return (logits[..., 0] - target_values).abs() <= numerical_atol


def perturbed_copy(model: Any, rel_scale: float, seed: int) -> Any:
    """A copy of `model` with Gaussian noise of `rel_scale` times each weight matrix's RMS added
    to every weight matrix (biases and all-zero matrices untouched).

    The negative control of the conversion check: a conversion that is slightly wrong
    everywhere must score below exact agreement, or the check could not catch a wrong one.
    """
    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(noisy.named_parameters()):
            if not name.split(".")[-1].startswith("W_"):
                continue
            rms = param.pow(2).mean().sqrt()
            noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
            param.add_(noise.to(param.device) * rel_scale * rms)
    return noisy


def control_rasp_agreement(
    model: Any, domain: Domain, pad_id: int, categorical: bool, numerical_atol: float,
    rel_scale: float = CONTROL_NOISE, seed: int = 0,
) -> float:
    """Agreement with the RASP program of the perturbed copy of `model` (the negative control)."""
    noisy = perturbed_copy(model, rel_scale, seed)
    with torch.no_grad():
        logits = run_converted(noisy, domain.tokens, pad_id)
    agree = agrees_with_rasp(logits, categorical, domain.target_ids, domain.target_values,
                             numerical_atol)
    return masked_mean(agree, domain.out_mask)


def compile_and_convert(
    name: str, cfg: TracrConfig
) -> tuple[Any, TracrModelInfo, Domain]:
    """Compile, convert, check on the whole domain; returns (model, info, domain)."""
    compiled = compile_program(name, cfg)
    asm = compiled.assembled
    model, tl_config, w_u = convert_to_hooked_transformer(compiled)
    enc = asm.input_encoder.encoding_map
    input_tokens = tuple(tok for tok, _ in sorted(enc.items(), key=lambda kv: kv[1]))
    categorical = bool(hasattr(asm.output_encoder, "encoding_map"))
    output_values = (
        tuple(v for v, _ in sorted(asm.output_encoder.encoding_map.items(), key=lambda kv: kv[1]))
        if categorical else ()
    )
    output_variable = compiled.program.name
    domain = enumerate_domain(cfg.vocab, cfg.max_seq_len)
    target_ids, target_values = rasp_ground_truth(
        compiled, domain, output_values, cfg.max_seq_len + 1)
    summary = check_against_tracr(
        compiled, model, w_u, input_tokens, categorical, domain, cfg.max_seq_len,
        target_ids, target_values, cfg.check_atol)
    summary["passed"] = bool(
        summary["max_abs_diff_logits"] <= cfg.check_atol
        and summary["max_abs_diff_residual"] <= cfg.check_atol
        and summary["decoded_agreement"] == 1.0
    )
    info = TracrModelInfo(
        program=name, vocab=tuple(cfg.vocab), max_seq_len=cfg.max_seq_len,
        categorical=categorical, output_variable=output_variable,
        residual_labels=compiled.residual_labels,
        residual_variables=tuple(parse_residual_label(l)[0] for l in compiled.residual_labels),
        input_tokens=input_tokens, output_values=output_values, tl_config=tl_config,
        check=summary,
    )
    tokens, out_mask = encode_domain(domain, info.token_to_id, cfg.max_seq_len)
    dom = Domain(tokens=tokens, out_mask=out_mask, target_ids=target_ids,
                 target_values=target_values)
    summary["control_rasp_agreement"] = control_rasp_agreement(
        model, dom, info.token_to_id[PAD], categorical, cfg.check_atol)
    summary["control_noise"] = CONTROL_NOISE
    return model, info, dom


__all__ = [
    "CONTROL_NOISE", "agrees_with_rasp", "check_against_tracr", "compile_and_convert",
    "control_rasp_agreement", "perturbed_copy", "rasp_ground_truth",
]
