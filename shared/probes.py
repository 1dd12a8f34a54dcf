"""Linear probes: multinomial logistic regression in torch (L-BFGS), cross-validated.

The one probe implementation write-ups share (fact finding's sport probes, the embedding
studies' word-index and token-feature probes):

- features are standardised with the training rows' mean and standard deviation;
- the objective is mean cross-entropy + `l2` * ||W||^2 / 2 (bias not penalised), minimised
  full-batch with L-BFGS (strong Wolfe line search) from zero weights: deterministic for fixed
  inputs on CPU;
- the splits of one feature set are fitted as one batched problem: the objective is a sum of
  independent convex problems, so its minimiser is every split's own minimiser.

Moved here unchanged from fact finding (which now imports it from here), so fact finding's
results are unchanged. Two other probes stay where they are on purpose: the grid
challenge's (float64, penalty l2 * ||W||^2, other tolerances) and fact finding's toy
memorisation probe (scikit-learn); moving them onto this one would change those write-ups'
pinned results.
"""


from __future__ import annotations

import dataclasses

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class ProbeFit:
    """Probes of a batch of problems (one per split); predict with `logits`."""

    W: Float[Tensor, "problem d cls"]
    b: Float[Tensor, "problem cls"]
    mean: Float[Tensor, "problem d"]
    std: Float[Tensor, "problem d"]

    def logits(self, X: Float[Tensor, "problem n d"]) -> Float[Tensor, "problem n cls"]:
        Z = (X - self.mean[:, None]) / self.std[:, None]
        return einops.einsum(Z, self.W, "p n d, p d c -> p n c") + self.b[:, None]


def splits(n: int, n_splits: int, train_fraction: float, seed: int) -> Int[Tensor, "split n"]:
    """`n_splits` random permutations of range(n): the first round(train_fraction * n) of each
    are its training rows, the rest its validation rows."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n, generator=gen) for _ in range(n_splits)])


def n_train(n: int, train_fraction: float) -> int:
    k = int(round(train_fraction * n))
    if not 1 <= k < n:
        raise ValueError(f"a {train_fraction:.2f} split of {n} rows leaves no train or val rows")
    return k


def fit_logistic(
    X: Float[Tensor, "problem n d"], y: Int[Tensor, "problem n"], n_classes: int,
    l2: float, max_iter: int,
) -> ProbeFit:
    """Fit one L2-regularised multinomial logistic regression per problem (batched L-BFGS)."""
    with torch.inference_mode(False), torch.no_grad():
        # Fresh (non-inference) tensors: the inputs may come from an inference-mode pass.
        X, y = X.float().clone(), y.clone()
        mean = X.mean(1)
        std = X.std(1, unbiased=False).clamp_min(1e-6)
        Z = (X - mean[:, None]) / std[:, None]
    p, _, d = Z.shape
    with torch.inference_mode(False):
        W = torch.zeros(p, d, n_classes, device=X.device, requires_grad=True)
        b = torch.zeros(p, n_classes, device=X.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        logits = einops.einsum(Z, W, "p n d, p d c -> p n c") + b[:, None]
        ce = torch.nn.functional.cross_entropy(
            einops.rearrange(logits, "p n c -> (p n) c"), y.flatten(), reduction="none")
        # Sum over problems of each problem's mean loss: the problems stay independent.
        loss = ce.view(p, -1).mean(1).sum() + 0.5 * l2 * W.pow(2).sum()
        loss.backward()
        return loss

    with torch.inference_mode(False), torch.enable_grad():
        opt.step(closure)
    return ProbeFit(W.detach(), b.detach(), mean, std)


def cross_validated_accuracy(
    X: Float[Tensor, "feature_set n d"], y: Int[Tensor, " n"], n_classes: int,
    perms: Int[Tensor, "split n"], train_fraction: float, l2: float, max_iter: int,
) -> Float[Tensor, "feature_set split"]:
    """Validation accuracy of a probe trained on each split's training rows, for every feature
    set. The splits of one feature set are one batched fit; feature sets are fitted apart, so a
    set's accuracy does not depend on which other sets are probed (L-BFGS stops on the batch's
    summed loss, and near-tied validation predictions can flip with the stopping point)."""
    k = n_train(X.shape[1], train_fraction)
    perms = perms.to(X.device)
    y = y.to(X.device)
    tr, va = perms[:, :k], perms[:, k:]
    out = []
    for Xf in X:
        fit = fit_logistic(Xf[tr], y[tr], n_classes, l2, max_iter)
        pred = fit.logits(Xf[va].float()).argmax(-1)
        out.append((pred == y[va]).float().mean(1).cpu())
    return torch.stack(out)
