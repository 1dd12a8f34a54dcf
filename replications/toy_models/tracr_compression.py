"""Compressing a compiled Tracr model's residual stream with one shared matrix.

Tracr's `CompressedTransformer` scheme: a single matrix W [d_model, d_compressed] is used for
every write to the residual stream (x -> x W) and every read from it (h -> h W^T); the compiled
weights stay frozen and only W is learned.

Equivalence used here. Let h be the compressed residual and r = h W^T what every layer reads.
Writing the embedding e and each sublayer output f_l through W gives
    h = e W + sum_l f_l(r_l) W   =>   r = e P + sum_l f_l(r_l) P,   with P = W W^T.
So running the *uncompressed* model with every write (embedding, attention output, MLP output)
multiplied by P before it is added to the residual computes exactly what the compressed model
computes at every read, and the final unembedding reads r as well. P need not be a projection
(W is unconstrained); the identity holds for any W. With W = I (full width) nothing changes.
The multiplication is done with TransformerLens hooks on `blocks.0.hook_resid_pre` (the
embedding sum), every `hook_attn_out` and every `hook_mlp_out`.

Every (width, restart) pair trains at once as an independent instance: the batch holds each
instance's copy of the inputs, and the instances' losses are summed, so each W only receives
gradient from its own loss (the same as separate runs with Adam). Loss is cross-entropy on the
output positions for categorical programs and MSE for numerical ones (frac_prevs), both against
the RASP program's true outputs. Per width, the restart with the lowest final loss on the whole
domain is the one reported.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from replications.toy_models.tracr_models import (
    PAD,
    Domain,
    TracrModelInfo,
    categorical_correct,
    numerical_correct,
    pad_hooks,
)
from shared.config import check
from shared.runtime import step_generator
from shared.training import train_loop


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Learning one residual compression matrix per width, for a few compiled programs."""

    programs: tuple[str, ...]  # compiled programs to compress (categorical and numerical)
    min_width: int  # smallest compressed width in the sweep
    width_stride: int  # widths are d_model, d_model - stride, ... down to min_width
    n_restarts: int  # independent initialisations per width (the lowest-loss one is reported)
    init: Literal["orthogonal", "normal"]  # orthonormal columns, or N(0, 1) as tracr does
    lr: float  # Adam, cosine-decayed to zero over n_steps
    batch_size: int  # input sequences per step (each instance sees the same ones)
    n_steps: int
    eval_chunk: int  # instances evaluated together on the whole domain (bounds memory)
    mid_width_fraction: float  # the 'mid' width for singular-value ratios, as a fraction
    accuracy_target: float  # 'works' threshold for the smallest-adequate-width metric
    checkpoint_every: int
    log_every: int

    def __post_init__(self) -> None:
        check(len(self.programs) > 0, "compression.programs needs at least one program")
        check(len(set(self.programs)) == len(self.programs), "compression.programs repeats")
        check(self.min_width >= 1, "compression.min_width must be at least 1")
        check(self.width_stride >= 1, "compression.width_stride must be at least 1")
        check(self.n_restarts >= 1, "compression.n_restarts must be at least 1")
        check(self.lr > 0, "compression.lr must be positive")
        check(self.batch_size > 0 and self.n_steps > 0,
              "compression.batch_size and n_steps must be positive")
        check(self.eval_chunk > 0, "compression.eval_chunk must be positive")
        check(0 < self.mid_width_fraction < 1, "compression.mid_width_fraction must be in (0, 1)")
        check(0 < self.accuracy_target <= 1, "compression.accuracy_target must be in (0, 1]")
        check(self.checkpoint_every > 0 and self.log_every > 0,
              "compression.checkpoint_every and log_every must be positive")


def sweep_widths(d_model: int, min_width: int, stride: int) -> tuple[int, ...]:
    """Compressed widths, ascending: d_model, d_model - stride, ... >= min_width (d_model kept)."""
    check(min_width <= d_model, f"min_width {min_width} exceeds d_model {d_model}")
    return tuple(sorted(range(d_model, min_width - 1, -stride)))


def init_compression(
    d_model: int, width: int, init: str, generator: torch.Generator
) -> Float[Tensor, "d_model width"]:
    """Initial W: orthonormal columns (P a projection; P = I at full width) or N(0, 1)."""
    gauss = torch.randn(d_model, d_model, generator=generator)
    if init == "normal":
        return gauss[:, :width].clone()
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r))  # the unique QR, so the draw alone fixes W
    return q[:, :width].contiguous()


class Compressors(nn.Module):
    """One compression matrix per (width, restart) instance, trained together."""

    def __init__(
        self, d_model: int, widths: Sequence[int], n_restarts: int, init: str, seed: int
    ) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.n_restarts = n_restarts
        # Instance order: width-major, restarts adjacent.
        self.instances = tuple((w, r) for w in self.widths for r in range(n_restarts))
        gen = torch.Generator().manual_seed(seed)
        self.W = nn.ParameterList(
            [nn.Parameter(init_compression(d_model, w, init, gen)) for w, _ in self.instances]
        )

    def projections(self, which: Sequence[int] | None = None) -> Float[Tensor, "inst d d"]:
        """P = W W^T for the chosen instances (all by default)."""
        idx = range(len(self.W)) if which is None else which
        return torch.stack([self.W[i] @ self.W[i].T for i in idx])


def compression_hooks(model: Any, proj: Float[Tensor, "inst d d"]) -> list[tuple[str, Any]]:
    """Hooks multiplying the embedding and every sublayer output by its instance's P.

    The batch holds the instances stacked: row (inst, batch) is input `batch` seen through
    instance `inst`'s compression.
    """
    n_inst = proj.shape[0]

    def project(x: Float[Tensor, "ib pos d"], hook: Any) -> Tensor:
        x = einops.rearrange(x, "(inst batch) pos d -> inst batch pos d", inst=n_inst)
        x = einops.einsum(x, proj, "inst batch pos d, inst d e -> inst batch pos e")
        return einops.rearrange(x, "inst batch pos e -> (inst batch) pos e")

    names = ["blocks.0.hook_resid_pre"]
    for layer in range(model.cfg.n_layers):
        names.append(f"blocks.{layer}.hook_attn_out")
        if not model.cfg.attn_only:
            names.append(f"blocks.{layer}.hook_mlp_out")
    return [(name, project) for name in names]


def compressed_outputs(
    model: Any, tokens: Int[Tensor, "batch pos"], pad_id: int, proj: Float[Tensor, "inst d d"]
) -> Float[Tensor, "inst batch pos n_out"]:
    """Logits (or values) of the model run through every instance's compression."""
    n_inst = proj.shape[0]
    rep = einops.repeat(tokens, "batch pos -> (inst batch) pos", inst=n_inst)
    hooks = pad_hooks(model, rep, pad_id) + compression_hooks(model, proj)
    out = model.run_with_hooks(rep, fwd_hooks=hooks)
    return einops.rearrange(out, "(inst batch) pos o -> inst batch pos o", inst=n_inst)


def task_loss(
    out: Float[Tensor, "inst batch pos n_out"], mask: Bool[Tensor, "batch pos"],
    target_ids: Int[Tensor, "batch pos"], target_values: Float[Tensor, "batch pos"],
    categorical: bool,
) -> Float[Tensor, " inst"]:
    """Per-instance loss over output positions: cross-entropy, or MSE for numerical outputs."""
    n_inst = out.shape[0]
    m = mask.float()
    if categorical:
        logits = einops.rearrange(out, "inst batch pos o -> inst o batch pos")
        tgt = einops.repeat(target_ids.clamp_min(0), "batch pos -> inst batch pos", inst=n_inst)
        per_pos = F.cross_entropy(logits, tgt, reduction="none")
    else:
        per_pos = (out[..., 0] - target_values).pow(2)
    return (per_pos * m).sum(dim=(1, 2)) / m.sum().clamp_min(1.0)


def accuracy(
    out: Float[Tensor, "*inst batch pos n_out"], mask: Bool[Tensor, "batch pos"],
    target_ids: Int[Tensor, "batch pos"], target_values: Float[Tensor, "batch pos"],
    categorical: bool,
) -> tuple[Float[Tensor, " *inst"], Float[Tensor, " *inst"]]:
    """Per-position and whole-sequence accuracy over output positions.

    Categorical: argmax equals the true class. Numerical (frac_prevs): within half a step of
    the true fraction (see `frac_prevs_tolerance`).
    """
    if categorical:
        correct = categorical_correct(out, target_ids)
    else:
        correct = numerical_correct(out[..., 0], target_values)
    correct = correct | ~mask  # positions that are not outputs never count against
    per_pos = (correct & mask).float().sum(dim=(-1, -2)) / mask.float().sum().clamp_min(1.0)
    per_seq = correct.all(dim=-1).float().mean(dim=-1)
    return per_pos, per_seq


def output_share(
    W: Float[Tensor, "d_model width"], output_dims: Bool[Tensor, " d_model"]
) -> float:
    """Share of W's top left singular vector (a residual direction) on the output variable."""
    u, _, _ = torch.linalg.svd(W.detach(), full_matrices=False)
    return u[:, 0].pow(2)[output_dims].sum().item()


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    """One program's width sweep. Per-width lists are ascending in width; [width][restart]."""

    widths: tuple[int, ...]
    selected_restart: tuple[int, ...]  # lowest final loss per width
    accuracy: tuple[float, ...]  # per output position, selected restart
    sequence_accuracy: tuple[float, ...]
    final_loss: tuple[float, ...]
    singular_values: tuple[tuple[float, ...], ...]  # of the selected W, descending
    top_output_share: tuple[float, ...]  # see `output_share`
    restart_accuracy: tuple[tuple[float, ...], ...]
    restart_loss: tuple[tuple[float, ...], ...]
    uncompressed_accuracy: float
    uncompressed_loss: float
    history: tuple[dict[str, float], ...]


@torch.no_grad()
def evaluate(
    model: Any, info: TracrModelInfo, domain: Domain, comp: Compressors, chunk: int
) -> tuple[list[float], list[float], list[float]]:
    """Accuracy, sequence accuracy and loss of every instance on the whole domain."""
    pad_id = info.token_to_id[PAD]
    acc, seq_acc, loss = [], [], []
    for start in range(0, len(comp.W), chunk):
        which = list(range(start, min(start + chunk, len(comp.W))))
        out = compressed_outputs(model, domain.tokens, pad_id, comp.projections(which))
        a, s = accuracy(out, domain.out_mask, domain.target_ids, domain.target_values,
                        info.categorical)
        lo = task_loss(out, domain.out_mask, domain.target_ids, domain.target_values,
                       info.categorical)
        acc += a.tolist()
        seq_acc += s.tolist()
        loss += lo.tolist()
    return acc, seq_acc, loss


@torch.no_grad()
def evaluate_uncompressed(
    model: Any, info: TracrModelInfo, domain: Domain
) -> tuple[float, float]:
    """Accuracy and loss of the compiled model itself (no compression)."""
    pad_id = info.token_to_id[PAD]
    out = model.run_with_hooks(domain.tokens, fwd_hooks=pad_hooks(model, domain.tokens, pad_id))
    out = out[None]
    a, _ = accuracy(out, domain.out_mask, domain.target_ids, domain.target_values,
                    info.categorical)
    lo = task_loss(out, domain.out_mask, domain.target_ids, domain.target_values,
                   info.categorical)
    return a.item(), lo.item()


def train_compression(
    model: Any, info: TracrModelInfo, domain: Domain, cfg: CompressionConfig, seed: int,
    checkpoint_path: Path | None, fingerprint: str, desc: str,
) -> tuple[Compressors, CompressionResult]:
    """Learn W for every width and restart (resumable), then evaluate on the whole domain.

    Adam with cosine decay of the learning rate to zero over `n_steps`. Batches are drawn
    uniformly from the input domain with `step_generator(seed, step)`.
    """
    widths = sweep_widths(info.d_model, cfg.min_width, cfg.width_stride)
    comp = Compressors(info.d_model, widths, cfg.n_restarts, cfg.init, seed)
    opt = torch.optim.Adam(comp.parameters(), lr=cfg.lr)
    # Cosine decay to zero: W settles at the end instead of jittering at full step size.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.n_steps) / cfg.n_steps)))
    pad_id = info.token_to_id[PAD]
    n_domain = domain.tokens.shape[0]

    def step_fn(step: int) -> dict[str, float]:
        gen = step_generator(seed, step)
        idx = torch.randint(n_domain, (cfg.batch_size,), generator=gen)
        out = compressed_outputs(model, domain.tokens[idx], pad_id, comp.projections())
        losses = task_loss(out, domain.out_mask[idx], domain.target_ids[idx],
                           domain.target_values[idx], info.categorical)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        sched.step()
        return {"loss_mean": losses.mean().item(), "loss_min_width": losses[0].item(),
                "loss_full_width": losses[-1].item()}

    history = train_loop(
        step_fn, cfg.n_steps, {"compressors": comp, "opt": opt, "sched": sched},
        checkpoint_path, fingerprint, checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every, desc=desc, per_step=("sequences", cfg.batch_size),
    )
    acc, seq_acc, loss = evaluate(model, info, domain, comp, cfg.eval_chunk)
    unc_acc, unc_loss = evaluate_uncompressed(model, info, domain)
    out_dims = torch.tensor([v == info.output_variable for v in info.residual_variables])
    r = cfg.n_restarts
    per_width = lambda xs: [xs[i * r: (i + 1) * r] for i in range(len(widths))]  # noqa: E731
    restart_loss, restart_acc = per_width(loss), per_width(acc)
    chosen = [min(range(r), key=lambda j: (ls[j], j)) for ls in restart_loss]
    flat = [i * r + j for i, j in enumerate(chosen)]
    result = CompressionResult(
        widths=widths,
        selected_restart=tuple(chosen),
        accuracy=tuple(acc[k] for k in flat),
        sequence_accuracy=tuple(seq_acc[k] for k in flat),
        final_loss=tuple(loss[k] for k in flat),
        singular_values=tuple(
            tuple(torch.linalg.svdvals(comp.W[k].detach()).tolist()) for k in flat),
        top_output_share=tuple(output_share(comp.W[k], out_dims) for k in flat),
        restart_accuracy=tuple(tuple(a) for a in restart_acc),
        restart_loss=tuple(tuple(lo) for lo in restart_loss),
        uncompressed_accuracy=unc_acc,
        uncompressed_loss=unc_loss,
        history=tuple(history),
    )
    return comp, result


# ---------------------------------------------------------------------------------------------
# Summary metrics (pure functions of the results).


def sv_ratio(singular_values: Sequence[float]) -> float:
    """Largest over second-largest singular value (inf for a width-1 W or s2 = 0)."""
    if len(singular_values) < 2 or singular_values[1] <= 0:
        return math.inf
    return singular_values[0] / singular_values[1]


def sv_top_to_median(singular_values: Sequence[float]) -> float:
    """Largest singular value over the median one: a few dominant directions make this large."""
    med = median(singular_values)
    if med is None or med <= 0:
        return math.inf
    return singular_values[0] / med


def mid_width(widths: Sequence[int], d_model: int, fraction: float) -> int:
    """The swept width closest to fraction * d_model (the smaller one on a tie)."""
    target = fraction * d_model
    return min(widths, key=lambda w: (abs(w - target), w))


def smallest_adequate_width(
    widths: Sequence[int], accuracies: Sequence[float], target: float
) -> int | None:
    """Smallest width whose accuracy reaches `target`, or None if none does."""
    ok = [w for w, a in zip(widths, accuracies) if a >= target]
    return min(ok) if ok else None


def smallest_reliable_width(
    widths: Sequence[int], accuracies: Sequence[float], target: float
) -> int | None:
    """Smallest width from which every larger swept width also reaches `target` (None: none)."""
    best = None
    for w, a in sorted(zip(widths, accuracies), reverse=True):
        if a < target:
            break
        best = w
    return best


def median(values: Sequence[float]) -> float | None:
    """Median (mean of the middle two for an even count); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def summarise(
    program: str, d_model: int, categorical: bool, result: CompressionResult,
    cfg: CompressionConfig,
) -> dict[str, Any]:
    """Headline numbers of one program's sweep (selected restart per width)."""
    widths, acc = result.widths, result.accuracy
    mid = mid_width(widths, d_model, cfg.mid_width_fraction)
    half = mid_width(widths, d_model, 0.5)
    smallest = smallest_adequate_width(widths, acc, cfg.accuracy_target)
    reliable = smallest_reliable_width(widths, acc, cfg.accuracy_target)
    compressed = [i for i, w in enumerate(widths) if 2 <= w < d_model]
    ratios = [sv_ratio(result.singular_values[i]) for i in compressed]
    top_med = [sv_top_to_median(result.singular_values[i]) for i in compressed]
    return {
        "program": program,
        "categorical": categorical,
        "d_model": d_model,
        "uncompressed_accuracy": result.uncompressed_accuracy,
        "mid_width": mid,
        "sv_ratio_at_mid_width": sv_ratio(result.singular_values[widths.index(mid)]),
        "sv_ratio_median": median([x for x in ratios if math.isfinite(x)]),
        "sv_top_to_median_at_mid_width": sv_top_to_median(
            result.singular_values[widths.index(mid)]),
        "sv_top_to_median_median": median([x for x in top_med if math.isfinite(x)]),
        "top_output_share_at_mid_width": result.top_output_share[widths.index(mid)],
        "top_output_share_median": median([result.top_output_share[i] for i in compressed]),
        "half_width": half,
        "accuracy_at_half_width": acc[widths.index(half)],
        "smallest_width_at_target": smallest,
        "smallest_width_at_target_fraction": None if smallest is None else smallest / d_model,
        "accuracy_at_smallest_width_at_target": (
            None if smallest is None else acc[widths.index(smallest)]
        ),
        "smallest_reliable_width_at_target": reliable,
        "accuracy_full_width": acc[widths.index(d_model)],
        "accuracy_min_width": acc[0],
        "accuracy_target": cfg.accuracy_target,
    }


# ---------------------------------------------------------------------------------------------
# Metrics across programs (inputs: the results JSONs; the figures are in plots.py).


def compression_metrics(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Flat headline metrics from every program's results JSON (see `summarise`).

    `categorical_sv_ratio` / `numerical_sv_ratio`: s1 / s2 of the learned W at the mid width
    for the first categorical / numerical program; `*_sv_top_to_median`: s1 / median singular
    value there; `*_top_output_share`: share of the top singular direction on the output
    variable's residual dimensions; `*_median`: medians over the widths 2 <= w < d_model.
    Per program: accuracy at half width, the smallest width reaching the accuracy target (and
    as a fraction of d_model), the smallest width from which every larger width reaches it
    (accuracy need not be monotone in width), uncompressed accuracy.
    """
    out: dict[str, Any] = {}
    for kind, is_cat in (("categorical", True), ("numerical", False)):
        match = [r for r in results if r["categorical"] == is_cat]
        if match:
            s = match[0]["summary"]
            out[f"{kind}_program"] = s["program"]
            out[f"{kind}_sv_ratio"] = s["sv_ratio_at_mid_width"]
            out[f"{kind}_sv_ratio_width"] = s["mid_width"]
            out[f"{kind}_sv_ratio_median"] = s["sv_ratio_median"]
            out[f"{kind}_sv_top_to_median"] = s["sv_top_to_median_at_mid_width"]
            out[f"{kind}_sv_top_to_median_median"] = s["sv_top_to_median_median"]
            out[f"{kind}_top_output_share"] = s["top_output_share_at_mid_width"]
            out[f"{kind}_top_output_share_median"] = s["top_output_share_median"]
    for r in results:
        s, p = r["summary"], r["program"]
        for key in ("d_model", "uncompressed_accuracy", "accuracy_full_width",
                    "accuracy_at_half_width", "half_width", "smallest_width_at_target",
                    "smallest_width_at_target_fraction", "accuracy_at_smallest_width_at_target",
                    "smallest_reliable_width_at_target", "accuracy_min_width"):
            out[f"{p}_{key}"] = s[key]
        out["accuracy_target"] = s["accuracy_target"]
    return out
