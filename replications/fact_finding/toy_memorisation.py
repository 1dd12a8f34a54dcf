"""Toy models of memorisation (post 4): MLPs that map pairs of integers to binary labels.

Post 4 asks what intermediate representations a network that *memorises* can have, using
"1-2 MLP layers mapping pairs of integers to fixed and random binary labels". The setup here
mirrors the effective model of the athlete circuit:

- input: a pair (a, b), a in 0..n_first-1 (the first name), b in 0..n_last-1 (the surname),
  embedded as the SUM of two fixed random token embeddings, E_first[a] + E_last[b]: what
  attention layers 0-1 hand MLPs 2-6 on the surname token. The embeddings are Gaussian
  (variance 1/d_embed) and not trained, as the token embeddings are given to the effective
  model's MLPs;
- model: one or two residual GELU MLP blocks, x <- x + W_out GELU(W_in x + b_in) + b_out, then
  a linear readout to two logits (the effective model's "linear probe + softmax" end);
- labels, two tasks on the same pairs: `random`, an independent fair coin per pair (pure
  memorisation: no rule, like which sport an athlete plays); `rule`, f(a) XOR g(b) for random
  binary features f of first names and g of surnames (a fixed rule a network can learn from
  some pairs and apply to unseen ones: the generalising contrast);
- training: full-batch Adam on a random `train_fraction` of the pairs; the other pairs are
  held out, so held-out accuracy measures generalisation (chance for random labels);
- probes: logistic regression on each representation (embedding sum; each block's hidden
  neurons and the residual after it; the logits), trained on some of the model's training pairs
  and scored on the others, for (i) the label and (ii) the first input's identity (which of
  n_first first names: "first name is George").

Everything is deterministic for a fixed seed on the CPU.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from typing import Literal

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from shared.config import check

TASKS: tuple[str, ...] = ("random", "rule")
TARGETS: tuple[str, ...] = ("label", "first")  # probe targets: the label, the first input


@dataclasses.dataclass(frozen=True)
class MemorisationSettings:
    """Sizes of the toy task, its models, their training and the probes."""

    n_first: int  # first-name tokens (a)
    n_last: int  # surname tokens (b)
    d_embed: int  # width of the (fixed, random) token embeddings and the residual
    d_mlp: int  # GELU neurons per MLP block
    depths: tuple[int, ...]  # MLP blocks per model: the write-up's one- and two-layer MLPs
    tasks: tuple[Literal["random", "rule"], ...]
    train_fraction: float  # share of all pairs the models train on; the rest is held out
    n_steps: int  # full-batch Adam steps
    lr: float
    log_every: int  # steps between accuracy records (the training figure)
    probe_train_fraction: float  # share of the training pairs the probes fit on
    probe_c: float  # inverse L2 strength C of the logistic-regression probes
    probe_max_iter: int
    seed: int

    def __post_init__(self) -> None:
        check(self.n_first >= 2 and self.n_last >= 2, "memorisation.n_first and n_last must be >= 2")
        check(self.d_embed >= 2 and self.d_mlp >= 1, "memorisation.d_embed >= 2 and d_mlp >= 1")
        check(len(self.depths) >= 1 and all(1 <= d <= 4 for d in self.depths)
              and len(set(self.depths)) == len(self.depths),
              "memorisation.depths must be distinct depths in 1..4")
        check(len(self.tasks) >= 1 and len(set(self.tasks)) == len(self.tasks),
              "memorisation.tasks must be distinct tasks from [random, rule]")
        check(0 < self.train_fraction < 1, "memorisation.train_fraction must lie in (0, 1)")
        check(0 < self.probe_train_fraction < 1,
              "memorisation.probe_train_fraction must lie in (0, 1)")
        check(self.n_steps >= 1 and 1 <= self.log_every <= self.n_steps,
              "memorisation.n_steps >= 1 and log_every in [1, n_steps]")
        check(self.lr > 0 and self.probe_c > 0 and self.probe_max_iter >= 10,
              "memorisation.lr and probe_c must be positive, probe_max_iter >= 10")
        check(self.seed >= 0, "memorisation.seed must be non-negative")
        n_train = round(self.train_fraction * self.n_first * self.n_last)
        n_probe = round(self.probe_train_fraction * n_train)
        check(2 * self.n_first <= n_probe <= n_train - self.n_first,
              "memorisation: too few pairs for the probes (raise n_first * n_last or the fractions)")


def generator(seed: int, name: str) -> torch.Generator:
    """An independent CPU generator per named draw, stable across runs and call order."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode()))
                                         % (2**31 - 1))


# ---------------------------------------------------------------------------------------------
# The task.


@dataclasses.dataclass(frozen=True)
class PairTask:
    """All n_first * n_last pairs, their embeddings, both label sets and the splits."""

    first: Int[Tensor, " pair"]
    last: Int[Tensor, " pair"]
    embed: Float[Tensor, "pair d_embed"]  # E_first[a] + E_last[b]
    labels: dict[str, Int[Tensor, " pair"]]  # task -> 0/1 label
    train: Bool[Tensor, " pair"]  # the pairs the models see
    probe_train: Bool[Tensor, " pair"]  # a subset of `train`: the probes fit on these
    # The rule's per-token features (f of first names, g of surnames), kept for the record.
    f_first: Int[Tensor, " n_first"]
    g_last: Int[Tensor, " n_last"]

    @property
    def probe_val(self) -> Bool[Tensor, " pair"]:
        return self.train & ~self.probe_train


def make_task(s: MemorisationSettings) -> PairTask:
    """Pairs, fixed random embeddings, labels for each task and the train / probe splits."""
    a, b = torch.meshgrid(torch.arange(s.n_first), torch.arange(s.n_last), indexing="ij")
    first, last = a.flatten(), b.flatten()
    scale = s.d_embed ** -0.5
    e_first = torch.randn(s.n_first, s.d_embed, generator=generator(s.seed, "E_first")) * scale
    e_last = torch.randn(s.n_last, s.d_embed, generator=generator(s.seed, "E_last")) * scale
    n = len(first)
    labels = {
        "random": torch.randint(0, 2, (n,), generator=generator(s.seed, "random_labels")),
    }
    f = torch.randint(0, 2, (s.n_first,), generator=generator(s.seed, "f_first"))
    g = torch.randint(0, 2, (s.n_last,), generator=generator(s.seed, "g_last"))
    labels["rule"] = f[first] ^ g[last]
    order = torch.randperm(n, generator=generator(s.seed, "split"))
    n_train = round(s.train_fraction * n)
    train = torch.zeros(n, dtype=torch.bool)
    train[order[:n_train]] = True
    probe_train = torch.zeros(n, dtype=torch.bool)
    probe_train[order[:round(s.probe_train_fraction * n_train)]] = True
    return PairTask(first=first, last=last, embed=e_first[first] + e_last[last],
                    labels={t: labels[t] for t in s.tasks}, train=train,
                    probe_train=probe_train, f_first=f, g_last=g)


# ---------------------------------------------------------------------------------------------
# The models.


class ResidualMLP(nn.Module):
    """`depth` residual GELU MLP blocks on the summed embedding, then two logits."""

    def __init__(self, d_embed: int, d_mlp: int, depth: int, gen: torch.Generator) -> None:
        super().__init__()

        def init(*shape: int, fan_in: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=gen) * fan_in ** -0.5)

        self.W_in = nn.ParameterList([init(d_embed, d_mlp, fan_in=d_embed) for _ in range(depth)])
        self.b_in = nn.ParameterList([nn.Parameter(torch.zeros(d_mlp)) for _ in range(depth)])
        self.W_out = nn.ParameterList([init(d_mlp, d_embed, fan_in=d_mlp) for _ in range(depth)])
        self.b_out = nn.ParameterList([nn.Parameter(torch.zeros(d_embed)) for _ in range(depth)])
        self.W_U = init(d_embed, 2, fan_in=d_embed)
        self.b_U = nn.Parameter(torch.zeros(2))
        self.depth = depth

    def forward(
        self, x: Float[Tensor, "pair d_embed"], cache: dict[str, Tensor] | None = None
    ) -> Float[Tensor, "pair 2"]:
        if cache is not None:
            cache["embed"] = x
        for i in range(self.depth):
            h = nn.functional.gelu(x @ self.W_in[i] + self.b_in[i])
            x = x + h @ self.W_out[i] + self.b_out[i]
            if cache is not None:
                cache[f"mlp{i + 1}"] = h
                cache[f"resid{i + 1}"] = x
        logits = x @ self.W_U + self.b_U
        if cache is not None:
            cache["logits"] = logits
        return logits


def sites(depth: int) -> list[str]:
    """Probe sites in forward order: embed, (mlpL, residL) per block, logits."""
    return ["embed", *[f"{k}{i}" for i in range(1, depth + 1) for k in ("mlp", "resid")],
            "logits"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: ResidualMLP
    steps: list[int]
    train_accuracy: list[float]
    heldout_accuracy: list[float]
    loss: list[float]


def accuracy(logits: Float[Tensor, "n 2"], labels: Int[Tensor, " n"]) -> float:
    return float((logits.argmax(-1) == labels).float().mean())


def train_model(
    task: PairTask, task_name: str, depth: int, s: MemorisationSettings
) -> TrainResult:
    """Full-batch Adam on the training pairs; accuracy on train and held-out pairs logged."""
    model = ResidualMLP(s.d_embed, s.d_mlp, depth,
                        generator(s.seed, f"init_{task_name}_{depth}"))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    x, y = task.embed, task.labels[task_name]
    tr, ho = task.train, ~task.train
    steps, tr_acc, ho_acc, losses = [], [], [], []
    for step in range(s.n_steps + 1):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits[tr], y[tr])
        if step % s.log_every == 0 or step == s.n_steps:
            steps.append(step)
            tr_acc.append(accuracy(logits[tr].detach(), y[tr]))
            ho_acc.append(accuracy(logits[ho].detach(), y[ho]))
            losses.append(float(loss.detach()))
        if step == s.n_steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return TrainResult(model, steps, tr_acc, ho_acc, losses)


# ---------------------------------------------------------------------------------------------
# Probes.


def probe_accuracy(
    feats: Float[Tensor, "pair d"], target: Int[Tensor, " pair"], fit: Bool[Tensor, " pair"],
    score: Bool[Tensor, " pair"], c: float, max_iter: int,
) -> float:
    """Logistic regression (standardised features, lbfgs) fit on `fit`, accuracy on `score`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    X = feats.detach().double().numpy()
    y = target.numpy()
    scaler = StandardScaler().fit(X[fit.numpy()])
    clf = LogisticRegression(C=c, max_iter=max_iter)
    # BLAS threads beyond torch's (OpenBLAS defaults to every core) spin-wait on a busy
    # machine and make these small fits ten times slower.
    with warnings.catch_warnings(), threadpool_limits(limits=torch.get_num_threads()):
        # An unconverged fit is still a (slightly weaker) probe; the accuracy says how good.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(X[fit.numpy()]), y[fit.numpy()])
    pred = clf.predict(scaler.transform(X[score.numpy()]))
    return float(np.mean(pred == y[score.numpy()]))


@torch.no_grad()
def probe_model(
    model: ResidualMLP, task: PairTask, task_name: str, s: MemorisationSettings
) -> dict[str, dict[str, float]]:
    """Probe accuracies on the probe-validation pairs (pairs the model trained on, the probe
    did not): "label" and "first" map site -> accuracy. "readout" maps each residual site
    (embed, residL) -> accuracy of the model's own readout applied there, on all training
    pairs: how well the partial sum of the blocks so far already gives the label."""
    cache: dict[str, Tensor] = {}
    model(task.embed, cache)
    targets = {"label": task.labels[task_name], "first": task.first}
    out = {t: {site: probe_accuracy(cache[site], targets[t], task.probe_train, task.probe_val,
                                    s.probe_c, s.probe_max_iter)
               for site in sites(model.depth)}
           for t in TARGETS}
    y, tr = task.labels[task_name], task.train
    out["readout"] = {site: accuracy((cache[site] @ model.W_U + model.b_U)[tr], y[tr])
                      for site in sites(model.depth) if site == "embed" or
                      site.startswith("resid")}
    return out


# ---------------------------------------------------------------------------------------------
# The whole experiment.


def run(s: MemorisationSettings) -> dict:
    """Train every (task, depth) model and probe it. Returns the results (JSON-able):
    "tasks": task -> "l<depth>" -> curves, final accuracies and probes; "summary": the flat
    numbers the claims read."""
    from tqdm import tqdm

    task = make_task(s)
    out: dict = {"chance": {"label": 0.5, "first": 1.0 / s.n_first},
                 "n_pairs": len(task.first), "n_train": int(task.train.sum()),
                 "n_probe_fit": int(task.probe_train.sum()),
                 "n_probe_val": int(task.probe_val.sum()), "tasks": {}}
    jobs = [(t, d) for t in s.tasks for d in s.depths]
    for t, d in tqdm(jobs, desc="memorisation models", mininterval=5.0):
        res = train_model(task, t, d, s)
        probes = probe_model(res.model, task, t, s)
        out["tasks"].setdefault(t, {})[f"l{d}"] = {
            "depth": d, "sites": sites(d),
            "train_accuracy": res.train_accuracy[-1],
            "heldout_accuracy": res.heldout_accuracy[-1], "final_loss": res.loss[-1],
            # The curves as rows, the form shared.curves reads a training history in.
            "history": [{"step": st, "loss": lo, "train_acc": a, "heldout_acc": h}
                        for st, lo, a, h in zip(res.steps, res.loss, res.train_accuracy,
                                                res.heldout_accuracy, strict=True)],
            "probe_label": probes["label"], "probe_first": probes["first"],
            "readout_label": probes["readout"],
        }
    out["summary"] = summary(out["tasks"])
    return out


def summary(tasks: dict) -> dict[str, float]:
    """Flat numbers (names without dots), per task t:

    - t_min_train_accuracy / t_min_heldout_accuracy / t_max_heldout_accuracy: over depths;
    - t_embed_label_probe: label probe on the summed input embedding;
    - t_first_probe_embed / t_first_probe_block1_min: the first input's identity probe on
      the embedding, and its worst over the first block's neurons and residual (all depths):
      are the inputs still represented?
    - t_final_label_probe: label probe on the last residual, worst over depths;
    - t_hidden_label_probe_d1: label probe on the one-block model's hidden neurons;
    - t_partial_label_probe / t_partial_readout: the deepest model's residual after its first
      block (a partial sum): label probe, and the model's own readout applied there.
    """
    out: dict[str, float] = {}
    for t, models in tasks.items():
        ms = list(models.values())
        out[f"{t}_min_train_accuracy"] = min(m["train_accuracy"] for m in ms)
        out[f"{t}_min_heldout_accuracy"] = min(m["heldout_accuracy"] for m in ms)
        out[f"{t}_max_heldout_accuracy"] = max(m["heldout_accuracy"] for m in ms)
        out[f"{t}_embed_label_probe"] = ms[0]["probe_label"]["embed"]
        out[f"{t}_first_probe_embed"] = ms[0]["probe_first"]["embed"]
        out[f"{t}_first_probe_block1_min"] = min(m["probe_first"][k] for m in ms
                                                 for k in ("mlp1", "resid1"))
        out[f"{t}_final_label_probe"] = min(m["probe_label"][f"resid{m['depth']}"] for m in ms)
        if "l1" in models:
            out[f"{t}_hidden_label_probe_d1"] = models["l1"]["probe_label"]["mlp1"]
        deepest = max(ms, key=lambda m: m["depth"])
        if deepest["depth"] > 1:
            out[f"{t}_partial_label_probe"] = deepest["probe_label"]["resid1"]
            out[f"{t}_partial_readout"] = deepest["readout_label"]["resid1"]
    return out
