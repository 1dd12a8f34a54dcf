"""The SAE trainer: batched instances, resampling (reinit / anthropic), ghost grads, precisions.

Resampling of rarely-firing features follows either the monosemanticity replication
(`reinit`: Kaiming re-initialisation) or Anthropic's loss-weighted variant (`anthropic`).

The trainer's step computes the gradients by hand (`_sae_grads`) instead of through autograd:
five GEMMs per step instead of six (the gradient of the pre-encoder bias is a GEMV, not a
GEMM through the input), few passes over the [batch, d_sae] activations, fused Adam. It
matches `sae_losses` + autograd to float rounding (tests/unit/test_sae_fast_step.py).
A stateful data source (e.g. `shared.activations.ActivationBuffer`) is checkpointed with the
SAE via `data_state`; `eval_fn` logs evaluation metrics every `eval_every` steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping

import einops
import torch
from jaxtyping import Float
from torch import Tensor, nn

from shared import runtime
from shared.runtime import step_generator
from shared.sae import SAE, SAEConfig, kaiming_uniform_, sae_losses
from shared.training import Stateful, train_loop

SampleFn = Callable[[int], Float[Tensor, "batch *inst d_in"]]
EvalFn = Callable[[SAE], Mapping[str, float]]
# Matmul precision of the training step: fp32; tf32 (CUDA tensor cores, fp32 storage); bf16
# (operands and the [batch, d_sae] activations in bfloat16, fp32 accumulation, weights and
# Adam in fp32).
Precision = Literal["fp32", "tf32", "bf16"]


def _as_instances(x: Tensor, n_instances: int) -> Float[Tensor, "batch inst d_in"]:
    if x.ndim == 2:
        return einops.repeat(x, "batch d -> batch inst d", inst=n_instances)
    return x


def _instances_first(x: Tensor, n_instances: int) -> Float[Tensor, "inst batch d_in"]:
    """[batch, d] (shared by every instance) or [batch, inst, d] -> [inst, batch, d]."""
    if x.ndim == 2:
        # A stride-0 view: no copy (xc = x - b_dec materialises one per instance if needed).
        return einops.repeat(x, "batch d -> inst batch d", inst=n_instances) if n_instances > 1 \
            else x.unsqueeze(0)
    return einops.rearrange(x, "batch inst d -> inst batch d").contiguous()


# Below this many parameters the SAE's Adam step is the per-tensor loop (see SAETrainer).
_FUSED_ADAM_MIN_PARAMS = 1 << 16


@dataclasses.dataclass
class _StepResult:
    """What one hand-computed training step leaves behind for counting and logging."""

    acts: Tensor  # [inst, batch, d_sae], in the step's compute dtype
    err: Tensor  # [inst, batch, d_in] reconstruction minus input, fp32
    ghost_loss: Tensor | None = None  # [inst] the ghost-grads term added, when asked for


@dataclasses.dataclass(frozen=True)
class GhostSpec:
    """What the ghost-grads term of one step needs (see `_ghost_terms`)."""

    dead: Tensor  # [inst, d_sae] bool: the features treated as dead this step
    mode: str  # original | rescaled | dead_only_rescaled
    activation: str  # exp | exp_min0


@torch.no_grad()
def _sae_grads(
    sae: SAE, x: Float[Tensor, "inst batch d_in"], l1_coeffs: Float[Tensor, " inst"],
    recon_reduction: str, l1_reduction: str, compute_dtype: torch.dtype,
    ghost: GhostSpec | None = None,
) -> _StepResult:
    """Set `.grad` of every SAE parameter to the gradient of `sae_losses(...)["loss"].sum()`.

    Written out by hand rather than through autograd: autograd would also form the gradient
    with respect to the centred input (a sixth [batch, d_sae] x [d_sae, d_in] GEMM) only to sum
    it over the batch for `b_dec`; here that is a GEMV of the summed pre-activation gradient.
    The L1 term's gradient is a constant added to the feature gradient before the ReLU mask
    (|f| = f for ReLU outputs, and the mask zeroes it where f = 0, as autograd's does).
    Layout is instance-major so every GEMM is a plain (b)mm on contiguous or transposed views.
    With `ghost`, the ghost-grads term (`_ghost_terms`) is added to the loss: its
    pre-activation gradient joins the main one before the encoder's GEMM (three extra GEMMs
    per step, not four).
    """
    W_enc, W_dec, b_enc, b_dec = (p.detach() for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec))
    cd = compute_dtype
    batch, d_in = x.shape[1], x.shape[2]
    xc = x - einops.rearrange(b_dec, "inst d_in -> inst 1 d_in") if sae.pre_encoder_bias else x
    xc_c, W_enc_c, W_dec_c = xc.to(cd), W_enc.to(cd), W_dec.to(cd)  # no-ops in fp32
    # Forward: pre-activations with the encoder bias folded into the GEMM, ReLU in place.
    b_enc_c = einops.rearrange(b_enc.to(cd), "inst d_sae -> inst 1 d_sae")
    acts = torch.baddbmm(b_enc_c, xc_c, W_enc_c)
    pre = acts.clone() if ghost is not None else None
    acts.relu_()
    x_hat = torch.bmm(acts, W_dec_c).to(x.dtype)
    err = x_hat.add_(einops.rearrange(b_dec, "inst d_in -> inst 1 d_in")).sub_(x)
    # d loss / d x_hat: recon is (sum or mean over d_in) of err^2, averaged over the batch.
    grad_out = err * (2.0 / (batch if recon_reduction == "sum" else batch * d_in))
    grad_out_c = grad_out.to(cd)
    grad_W_dec = torch.bmm(acts.transpose(1, 2), grad_out_c).to(W_dec.dtype)
    grad_b_dec = grad_out.sum(1)
    # d loss / d acts = grad_out @ W_dec^T + l1 (per element), then the ReLU mask.
    l1_per_elem = l1_coeffs / batch if l1_reduction == "mean_batch" else l1_coeffs
    l1_c = einops.rearrange(l1_per_elem.to(cd), "inst -> inst 1 1")
    grad_acts = torch.baddbmm(l1_c, grad_out_c, W_dec_c.transpose(1, 2))
    # aten's ReLU backward: one pass, in place (zero where acts <= 0).
    torch.ops.aten.threshold_backward.grad_input(grad_acts, acts, 0.0, grad_input=grad_acts)
    ghost_loss = None
    if ghost is not None:
        assert pre is not None
        ghost_pre, ghost_W_dec, ghost_loss = _ghost_terms(W_dec, pre.to(x.dtype), err, ghost,
                                                          recon_reduction)
        grad_acts += ghost_pre.to(cd)
        grad_W_dec += ghost_W_dec
    grad_W_enc = torch.bmm(xc_c.transpose(1, 2), grad_acts).to(W_enc.dtype)
    grad_b_enc = grad_acts.sum(1, dtype=b_enc.dtype)
    if sae.pre_encoder_bias:
        # x - b_dec feeds the encoder: b_dec's gradient there is -(sum_batch grad_pre) @ W_enc^T.
        grad_b_dec -= einops.einsum(grad_b_enc, W_enc, "inst d_sae, inst d_in d_sae -> inst d_in")
    for param, grad in ((sae.W_enc, grad_W_enc), (sae.W_dec, grad_W_dec),
                        (sae.b_enc, grad_b_enc), (sae.b_dec, grad_b_dec)):
        param.grad = grad
    return _StepResult(acts=acts, err=err, ghost_loss=ghost_loss)


def _ghost_terms(
    W_dec: Tensor, pre: Float[Tensor, "inst batch d_sae"], err: Float[Tensor, "inst batch d_in"],
    spec: GhostSpec, recon_reduction: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """The ghost-grads term's gradients with respect to the pre-activations and W_dec, and
    the term itself per instance.

    For each example, the residual r = x - x_hat of the SAE (a constant) is fitted by the
    dead features alone, each firing exp(pre) (or exp(min(pre, 0))) on its decoder row:
    g = sum_dead act(pre_i) W_dec[i], rescaled per example (as a constant) to half the
    residual's norm, s = |r| / (2 |g| + 1e-6). The ghost loss is the reconstruction loss's
    form on s g - r (sum or mean over d_in, mean over the batch), times a constant lambda:
    "original" recon / ghost (so the term equals the reconstruction loss), "rescaled" that
    times the dead fraction, "dead_only_rescaled" the dead fraction. Instances with no dead
    feature get no ghost term.
    """
    dead, mode, activation = spec.dead, spec.mode, spec.activation
    batch, d_in = err.shape[1], err.shape[2]
    # where, not a product with the mask: a live feature's exp(pre) may overflow (inf * 0).
    act = torch.where(dead.unsqueeze(1), torch.exp(pre if activation == "exp"
                                                   else pre.clamp(max=0.0)), 0.0)
    g = torch.bmm(act, W_dec)  # [inst, batch, d_in]
    residual = -err
    scale = residual.norm(dim=-1, keepdim=True) / (2 * g.norm(dim=-1, keepdim=True) + 1e-6)
    diff = scale * g - residual
    per_d = 1.0 if recon_reduction == "sum" else 1.0 / d_in
    ghost = diff.pow(2).sum(-1).mean(1) * per_d  # [inst]
    recon = err.pow(2).sum(-1).mean(1) * per_d
    dead_fraction = dead.to(recon.dtype).mean(-1)
    if mode == "original":
        lam = recon / (ghost + 1e-12)
    elif mode == "rescaled":
        lam = recon / (ghost + 1e-12) * dead_fraction
    elif mode == "dead_only_rescaled":
        lam = dead_fraction
    else:
        raise ValueError(f"unknown ghost grads mode {mode!r}")
    lam = torch.where(dead.any(-1), lam, 0.0)
    # d (lam * ghost) / d g, then back through g = act @ W_dec and act = exp(pre) on dead.
    grad_g = diff * (scale * einops.rearrange(lam * (2.0 * per_d / batch), "i -> i 1 1"))
    grad_act = torch.bmm(grad_g, W_dec.transpose(1, 2))  # [inst, batch, d_sae]
    grad_pre = grad_act * (act if activation == "exp" else act * (pre < 0))
    return grad_pre, torch.bmm(act.transpose(1, 2), grad_g), lam * ghost


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """Switch TF32 tensor-core matmuls on or off for CUDA inside the block, restored after."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        previous = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if enabled else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = previous
    else:
        previous = matmul.allow_tf32
        matmul.allow_tf32 = enabled
        try:
            yield
        finally:
            matmul.allow_tf32 = previous


@contextlib.contextmanager
def _matmul_precision(precision: Precision, device: torch.device) -> Iterator[None]:
    """TF32 matmuls inside the block when asked for (CUDA only)."""
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    with tf32_matmuls(True):
        yield


class SAETrainer:
    """Owns an SAE, its Adam state and the firing counts used for resampling.

    `data_state`: the data source's state (e.g. an `ActivationBuffer`), checkpointed with the
    SAE so a resumed run is fed exactly the batches an uninterrupted one is. `eval_fn(sae)` is
    called every `eval_every` steps (and at the last) and its metrics are added to that step's
    metrics. Metrics are computed only on steps where `step % log_every == 0` (and on eval and
    last steps); other steps return `{}` (`train_loop` reads metrics only on those steps).
    """

    def __init__(
        self, cfg: SAEConfig, sample_fn: SampleFn, device: torch.device | str = "cpu", *,
        data_state: Stateful | None = None, eval_fn: EvalFn | None = None, eval_every: int = 0,
        log_every: int = 1, precision: Precision = "fp32",
    ):
        self.cfg, self.sample_fn, self.device = cfg, sample_fn, torch.device(device)
        if precision not in ("fp32", "tf32", "bf16"):
            raise ValueError(f"precision must be fp32, tf32 or bf16, got {precision!r}")
        if precision == "tf32" and self.device.type != "cuda":
            raise ValueError("precision 'tf32' needs a CUDA device")
        if eval_fn is not None and eval_every <= 0:
            raise ValueError("eval_every must be positive when eval_fn is given")
        if log_every <= 0:
            raise ValueError("log_every must be positive")
        self.data_state, self.eval_fn, self.eval_every = data_state, eval_fn, eval_every
        self.log_every, self.precision = log_every, precision
        self.compute_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        gen = torch.Generator().manual_seed(cfg.seed)
        self.sae = SAE(cfg.d_in, cfg.d_sae, cfg.n_instances, cfg.pre_encoder_bias, gen).to(device)
        # Fused Adam: one kernel over all parameters, equal to the per-tensor loop up to float
        # rounding and on CPU about 6x faster for a 512 x 4096 SAE. Its CPU kernel always opens
        # a parallel region, though, which for tiny SAEs (toy models) costs more than the update
        # itself when the cores are shared; those keep the per-tensor loop.
        n_params = sum(p.numel() for p in self.sae.parameters())
        fused = self.device.type == "cuda" or n_params >= _FUSED_ADAM_MIN_PARAMS
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=cfg.lr, betas=cfg.adam_betas,
                                    fused=fused)
        self.l1 = torch.tensor(cfg.l1_coeffs, dtype=torch.float32, device=self.device)
        # Features that fired during the current resampling window, per instance.
        self.counts = _Counts(torch.zeros(cfg.n_instances, cfg.d_sae, device=self.device))
        self.resampled: list[int] = []
        # Ghost grads: steps since each feature last fired (checkpointed only when in use, so
        # runs without ghost grads keep their checkpoint layout).
        self.ghost = cfg.ghost_grads != "none"
        self.since_fired = _Counts(torch.zeros(cfg.n_instances, cfg.d_sae, device=self.device))

    def state(self) -> dict[str, Stateful]:
        state: dict[str, Stateful] = {"sae": self.sae, "opt": self.opt, "counts": self.counts}
        if self.ghost:
            state["since_fired"] = self.since_fired
        if self.data_state is not None:
            state["data"] = self.data_state
        return state

    def dead_mask(self, step: int) -> Tensor:
        """Features ghost grads treats as dead at `step`: [inst, d_sae] bool."""
        if step < self.cfg.ghost_all_steps:
            return torch.ones_like(self.since_fired.value, dtype=torch.bool)
        return torch.ge(self.since_fired.value, self.cfg.ghost_dead_window)

    def step(self, step: int) -> dict[str, Tensor | float]:
        cfg = self.cfg
        x = _instances_first(self.sample_fn(step).to(self.device, torch.float32), cfg.n_instances)
        dead = self.dead_mask(step) if self.ghost else None
        spec = GhostSpec(dead, cfg.ghost_grads, cfg.ghost_activation) \
            if dead is not None else None
        with _matmul_precision(self.precision, self.device):
            out = _sae_grads(self.sae, x, self.l1, cfg.recon_reduction, cfg.l1_reduction,
                             self.compute_dtype, ghost=spec)
            ghost_loss = out.ghost_loss
            if self.ghost:
                fired_now = torch.sign(out.acts).amax(1) > 0  # [inst, d_sae]
                self.since_fired.value.add_(1).masked_fill_(fired_now, 0.0)
        if cfg.decoder_weight_decay > 0:
            assert self.sae.W_dec.grad is not None
            self.sae.W_dec.grad.add_(self.sae.W_dec.detach(), alpha=cfg.decoder_weight_decay)
        if cfg.decoder_norm == "unit":
            self.sae.remove_parallel_grad_()
        self.opt.step()
        if cfg.decoder_norm == "unit":
            self.sae.normalise_decoder_()
        else:
            self.sae.clamp_decoder_norm_()
        is_eval = self.eval_fn is not None and (
            step % self.eval_every == 0 or step == cfg.n_steps - 1)
        logged = step % self.log_every == 0 or step == cfg.n_steps - 1 or is_eval
        in_window = self._in_window(step)
        metrics: dict[str, Tensor | float] = {}
        if in_window or logged:
            # sign(acts) is 1 where a feature fired, 0 elsewhere (acts >= 0): the cheapest count.
            fired = torch.sign(out.acts).sum(1, dtype=torch.float32)  # [inst, d_sae]
            if in_window:
                self.counts.value += fired
            if logged:
                metrics = self._metrics(out, fired)
                if ghost_loss is not None and dead is not None:
                    metrics["ghost_loss"] = ghost_loss.mean()
                    metrics["ghost_dead_fraction"] = dead.float().mean()
        del out
        if self._is_resample_step(step + 1):
            self.resample(step + 1)
        if is_eval:
            assert self.eval_fn is not None
            metrics.update(self.eval_fn(self.sae))
        return metrics

    @torch.no_grad()
    def _metrics(self, out: _StepResult, fired: Tensor) -> dict[str, Tensor | float]:
        # Scalar tensors: train_loop reads them only on logged steps (no per-step device sync).
        cfg = self.cfg
        sq = out.err.pow(2)
        recon = (sq.sum(-1) if cfg.recon_reduction == "sum" else sq.mean(-1)).mean(1)  # [inst]
        l1_per = out.acts.sum(-1, dtype=torch.float32)  # [inst, batch]; acts >= 0
        l1 = l1_per.mean(1) if cfg.l1_reduction == "mean_batch" else l1_per.sum(1)
        loss = recon + self.l1 * l1
        return {
            "loss": loss.mean(),
            "recon": recon.mean(),
            "l0": fired.sum(-1).mean() / out.acts.shape[1],
        }

    def _is_resample_step(self, step: int) -> bool:
        cfg = self.cfg
        return (
            cfg.resample != "none" and step % cfg.resample_every == 0
            and 0 < step <= cfg.resample_stop and step < cfg.n_steps
        )

    def _in_window(self, step: int) -> bool:
        cfg = self.cfg
        if cfg.resample == "none":
            return False
        return (step % cfg.resample_every) >= cfg.resample_every - cfg.resample_window

    @torch.no_grad()
    def resample(self, step: int) -> None:
        """Re-initialise features whose firing frequency in the window was <= dead_frequency."""
        cfg = self.cfg
        freq = self.counts.value / (cfg.resample_window * cfg.batch_size)
        dead = freq <= cfg.dead_frequency  # [inst, d_sae]
        self.counts.value.zero_()
        if not dead.any():
            return
        self.resampled.append(int(dead.sum().item()))
        gen = step_generator(cfg.seed, step + 10_000_019)
        sae = self.sae
        if cfg.resample == "reinit":
            new_enc = torch.empty_like(sae.W_enc)
            new_dec = torch.empty_like(sae.W_dec)
            for inst in range(cfg.n_instances):
                kaiming_uniform_(new_enc[inst], cfg.d_sae, gen)
                kaiming_uniform_(new_dec[inst], cfg.d_in, gen)
            new_dec = new_dec / new_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        else:
            new_enc, new_dec = self._anthropic_directions(dead, step, gen)
        dead_enc = einops.rearrange(dead, "inst d_sae -> inst 1 d_sae")
        dead_dec = einops.rearrange(dead, "inst d_sae -> inst d_sae 1")
        sae.W_enc.copy_(torch.where(dead_enc, new_enc, sae.W_enc))
        sae.W_dec.copy_(torch.where(dead_dec, new_dec, sae.W_dec))
        sae.b_enc.copy_(torch.where(dead, torch.zeros_like(sae.b_enc), sae.b_enc))
        # Reset Adam's moments for the re-initialised weights so stale momentum does not undo it.
        for param, mask in ((sae.W_enc, dead_enc), (sae.W_dec, dead_dec), (sae.b_enc, dead)):
            st = self.opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key].masked_fill_(mask.expand_as(st[key]), 0.0)

    def _anthropic_directions(
        self, dead: Tensor, step: int, gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Inputs drawn with probability proportional to their squared reconstruction loss."""
        cfg, sae = self.cfg, self.sae
        pool = torch.cat(
            [_as_instances(self.sample_fn(-(step * 64 + j + 1)).to(self.device), cfg.n_instances)
             for j in range(max(1, 8192 // cfg.batch_size))]
        )  # [pool, inst, d_in]
        sq = sae_losses(sae, pool, self.l1, cfg.recon_reduction, cfg.l1_reduction)
        weights = sq["per_example_sq"].T.clamp_min(1e-12) ** 2  # [inst, pool]; prop. to loss^2
        alive = ~dead
        new_enc = sae.W_enc.clone()
        new_dec = sae.W_dec.clone()
        for inst in range(cfg.n_instances):
            n_dead = int(dead[inst].sum())
            if n_dead == 0:
                continue
            idx = runtime.multinomial(weights[inst], n_dead, gen)
            x = pool[idx, inst]  # [n_dead, d_in]
            x_unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            enc_norms = sae.W_enc[inst].norm(dim=0)  # [d_sae]
            scale = 0.2 * (enc_norms[alive[inst]].mean() if alive[inst].any() else 1.0)
            new_dec[inst, dead[inst]] = x_unit
            new_enc[inst][:, dead[inst]] = (x_unit * scale).T
        return new_enc, new_dec


def training_options(cfg: SAEConfig, instance: int) -> dict[str, object]:
    """The trainer settings of one instance, as the SAELens export records them (cfg.json)."""
    if not 0 <= instance < cfg.n_instances:
        raise ValueError(f"instance {instance} out of range for {cfg.n_instances} instances")
    return {
        "l1_coefficient": cfg.l1_coeffs[instance],
        "lr": cfg.lr,
        "adam_betas": list(cfg.adam_betas),
        "batch_size": cfg.batch_size,
        "n_steps": cfg.n_steps,
        "pre_encoder_bias": cfg.pre_encoder_bias,
        "recon_reduction": cfg.recon_reduction,
        "l1_reduction": cfg.l1_reduction,
        "resample": cfg.resample,
        "ghost_grads": cfg.ghost_grads,
        "ghost_activation": cfg.ghost_activation,
        "ghost_dead_window": cfg.ghost_dead_window,
        "ghost_all_steps": cfg.ghost_all_steps,
        "decoder_norm": cfg.decoder_norm,
        "decoder_weight_decay": cfg.decoder_weight_decay,
        "seed": cfg.seed,
    }


class _Counts(nn.Module):
    """Firing counts as a buffer, so they are checkpointed with everything else."""

    value: Tensor  # the buffer, declared so type checkers know it is a tensor

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)


def train_sae(
    cfg: SAEConfig,
    sample_fn: SampleFn,
    checkpoint_path: Path | None,
    fingerprint: str,
    device: torch.device | str = "cpu",
    desc: str = "sae",
    checkpoint_every: int = 1000,
    log_every: int = 100,
    *,
    data_state: Stateful | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int = 0,
    precision: Precision = "fp32",
) -> tuple[SAE, list[dict[str, float]]]:
    """Train an SAE (all instances at once) on batches from `sample_fn(step)`; resumable.

    `sample_fn` must be a pure function of the step index (e.g. seeded by
    `step_generator(seed, step)`), returning [batch, d_in] or [batch, inst, d_in] -- or a
    stateful source called with steps in order, whose state is passed as `data_state` so it is
    checkpointed with the SAE (e.g. `ActivationBuffer.sample` with the buffer itself).
    `eval_fn(sae) -> metrics` runs every `eval_every` steps (a multiple of `log_every`, so its
    results land in the history) and at the last step.
    """
    if eval_fn is not None and (eval_every <= 0 or eval_every % log_every != 0):
        raise ValueError(f"eval_every ({eval_every}) must be a positive multiple of log_every "
                         f"({log_every}) so evaluations are recorded in the history")
    trainer = SAETrainer(cfg, sample_fn, device, data_state=data_state, eval_fn=eval_fn,
                         eval_every=eval_every, log_every=log_every, precision=precision)
    history = train_loop(
        trainer.step, cfg.n_steps, trainer.state(), checkpoint_path, fingerprint,
        checkpoint_every=checkpoint_every, log_every=log_every, desc=desc,
        per_step=("activations", cfg.batch_size),
    )
    return trainer.sae, history
