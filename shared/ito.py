"""Inference-time optimisation (ITO): sparse codes for a fixed SAE dictionary.

Gradient pursuit (Blumensath & Davies 2008) as the GDM progress update describes it for
accelerators, with non-negative coefficients: at each iteration pick the atom with the largest
inner product with the residual, add it to the selected set, take a gradient step on the
selected coefficients with the exactly optimal step size, and clip the coefficients at zero.

Here it runs on a whole batch at once in matrix-multiplication form: the inner products of
every input with every atom are one [batch, d] x [d, n_atoms] GEMM per iteration, the step
direction's image one [batch, n_atoms] x [n_atoms, d] GEMM, and every input has its own target
L0 (a row stops selecting new atoms once it has made `target_l0` selections, and stops
updating after `refine_steps` further iterations on its selected set). No row ever has more
non-zero coefficients than its target: each iteration adds at most one atom to a row's set.

`topk_codes` is the cheap alternative the write-up names: keep the k largest of the encoder's
coefficients and zero the rest. `sae_ito_codes` and `sae_topk_codes` apply them to one instance
of a `shared.sae.SAE` (ITO fits x - b_dec with the decoder rows, as the SAE decodes
codes @ W_dec + b_dec); `shared.sae_eval.SAEEvaluator.patched_loss_recovered` splices the
reconstruction into the LM.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.sae import SAE
from shared.sae_eval import encode_instance


def _targets(target_l0: int | Tensor, batch: int, device: torch.device) -> Int[Tensor, " batch"]:
    if isinstance(target_l0, int):
        if target_l0 < 0:
            raise ValueError(f"target_l0 must be non-negative, got {target_l0}")
        return torch.full((batch,), target_l0, dtype=torch.long, device=device)
    target = target_l0.to(device=device, dtype=torch.long)
    if target.shape != (batch,):
        raise ValueError(f"target_l0 must be an int or shape ({batch},), got {tuple(target.shape)}")
    if bool((target < 0).any()):
        raise ValueError("target_l0 must be non-negative")
    return target


@torch.no_grad()
def gradient_pursuit(
    x: Float[Tensor, "batch d"], dictionary: Float[Tensor, "n_atoms d"],
    target_l0: int | Int[Tensor, " batch"], *, refine_steps: int = 0, nonnegative: bool = True,
) -> Float[Tensor, "batch n_atoms"]:
    """Coefficients w (at most `target_l0` non-zero per row) with w @ dictionary ~ x.

    `dictionary` rows are the atoms (an SAE's `W_dec`; unit norm is not required: the step
    size is exact for any atoms). With `nonnegative` the selection takes the largest signed
    inner product and coefficients are clipped at zero after each step (SAE activations are
    non-negative); without it, the largest absolute inner product and no clipping.
    `refine_steps` adds that many gradient steps on each row's selected set after its last
    selection (0: exactly `target_l0` iterations, as the write-up's pseudocode).
    """
    if x.ndim != 2 or dictionary.ndim != 2 or x.shape[1] != dictionary.shape[1]:
        raise ValueError(f"x [batch, d] and dictionary [n_atoms, d] must share d, got "
                         f"{tuple(x.shape)} and {tuple(dictionary.shape)}")
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be non-negative, got {refine_steps}")
    batch, n_atoms = x.shape[0], dictionary.shape[0]
    target = _targets(target_l0, batch, x.device)
    n_slots = int(target.max().item()) if batch else 0
    # Compact form: slot t of a row holds the atom it selected at iteration t (idx, its
    # coefficient and the atom itself), so the reconstruction and the step's image cost
    # O(batch * slots * d); the one dense GEMM per iteration is the inner products with every
    # atom, which the selection needs. An atom selected again (after clipping zeroed it, or
    # while still active) reuses its slot, so no atom is counted twice.
    idx = torch.full((batch, n_slots), -1, dtype=torch.long, device=x.device)
    coef = x.new_zeros(batch, n_slots)
    atoms = x.new_zeros(batch, n_slots, x.shape[1])
    rows = torch.arange(batch, device=x.device)
    dict_t = dictionary.T
    for it in range(n_slots + refine_steps):
        residual = x - torch.einsum("bs,bsd->bd", coef, atoms)
        inner = residual @ dict_t  # [batch, n_atoms]: the one dense GEMM
        active = coef != 0
        if it < n_slots:
            chosen = (inner if nonnegative else inner.abs()).argmax(-1)
            selecting = target > it  # rows still adding atoms
            seen = idx[:, :it] == chosen.unsqueeze(-1)  # [batch, it]
            new = selecting & ~seen.any(-1)
            idx[:, it] = torch.where(new, chosen, -1)
            atoms[:, it] = torch.where(new.unsqueeze(-1), dictionary[chosen], 0.0)
            # The slot of an atom seen before (first match), else this iteration's slot.
            seen_slot = (seen.int().argmax(-1) if it else torch.zeros_like(chosen))
            slot = torch.where(seen.any(-1), seen_slot, it)
            active[rows[selecting], slot[selecting]] = True
        grad = torch.where(active, inner.gather(-1, idx.clamp(min=0)), 0.0)  # [batch, slots]
        image = torch.einsum("bs,bsd->bd", grad, atoms)  # the step direction in signal space
        num = (image * residual).sum(-1)
        den = (image * image).sum(-1)
        step = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)
        step = torch.where(target + refine_steps > it, step, 0.0)
        coef = coef + step.unsqueeze(-1) * grad
        if nonnegative:
            coef.clamp_(min=0.0)
    weights = x.new_zeros(batch, n_atoms)
    used = idx >= 0
    weights[rows.unsqueeze(-1).expand_as(idx)[used], idx[used]] = coef[used]
    return weights


@torch.no_grad()
def topk_codes(
    acts: Float[Tensor, "batch n_atoms"], k: int | Int[Tensor, " batch"]
) -> Float[Tensor, "batch n_atoms"]:
    """Keep each row's k largest coefficients (ties broken by `torch.topk`), zero the rest.

    Zero coefficients stay zero, so a row with fewer than k non-zero entries is unchanged.
    """
    if acts.ndim != 2:
        raise ValueError(f"acts must be [batch, n_atoms], got {tuple(acts.shape)}")
    target = _targets(k, acts.shape[0], acts.device).clamp(max=acts.shape[1])
    k_max = int(target.max().item()) if acts.shape[0] else 0
    if k_max == 0:
        return torch.zeros_like(acts)
    values, idx = acts.topk(k_max, dim=-1)
    keep = torch.arange(k_max, device=acts.device) < target.unsqueeze(-1)
    return torch.zeros_like(acts).scatter_(-1, idx, torch.where(keep, values, 0.0))


@torch.no_grad()
def sae_ito_codes(
    sae: SAE, inst: int, x: Float[Tensor, "n d_in"], target_l0: int | Int[Tensor, " n"],
    refine_steps: int = 0,
) -> Float[Tensor, "n d_sae"]:
    """Gradient-pursuit codes for instance `inst`'s dictionary (its encoder unused)."""
    W_dec, b_dec = sae.W_dec[inst].detach(), sae.b_dec[inst].detach()
    return gradient_pursuit(x.to(W_dec) - b_dec, W_dec, target_l0, refine_steps=refine_steps)


@torch.no_grad()
def sae_topk_codes(
    sae: SAE, inst: int, x: Float[Tensor, "n d_in"], k: int | Int[Tensor, " n"]
) -> Float[Tensor, "n d_sae"]:
    """Instance `inst`'s encoder activations with all but each row's k largest zeroed."""
    return topk_codes(encode_instance(sae, x, inst), k)
