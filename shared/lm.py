"""Language models for the LM write-ups: stand-ins trained here, or the papers' models by name.

- `LMConfig` / `build_model`: a TransformerLens `HookedTransformer` from a validated config
  (the monosemanticity stand-in mirrors gelu-1l: one layer, GELU MLP 4x wide, LayerNorm,
  learned positions; Pythia-like stand-ins use rotary and parallel attention + MLP).
- `train_lm`: AdamW with warmup then cosine or linear decay on rows of the tokenized corpus.
  Each step's batch is drawn with `step_generator(seed, step)` and `shared.training.train_loop`
  owns checkpoints, so a killed run resumes bit-identically on CPU.
- `save_model` / `load_model`: stand-ins as `model.safetensors` + `lm_config.json` (+ the
  tokenizer); `load_model` also takes a Hugging Face name for the paper profile (`gpt2-xl`,
  `EleutherAI/pythia-2.8b`, `gelu-1l`). gelu-1l's weights are a pickle (`model_final.pth`):
  TransformerLens 3.9 opens it with `torch.load(weights_only=False)`, so it is fetched here and
  opened with `weights_only=True` instead.
- `load_token_dataset`: the papers' data sets by name (`NeelNanda/c4-code-tokenized-2b` is
  already tokenized; `NeelNanda/pile-10k` is raw text, tokenized here), streamed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import torch
from jaxtyping import Int
from torch import Tensor, nn

from shared.config import build, check, config_hash, to_dict
from shared.io import load_tensors, read_json, save_tensors, write_json
from shared.runtime import pick_device, step_generator
from shared.training import train_loop

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

LOCAL_FORMAT = "shared.lm/1"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "lm_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# gelu-1l's repository holds a pickled state dict under this name (plus config.json).
NEEL_WEIGHTS_FILE = "model_final.pth"


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Architecture of a stand-in (the vocabulary size comes from the tokenizer)."""

    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    d_head: int
    act_fn: Literal["gelu", "gelu_new", "relu", "silu"]
    normalization_type: Literal["LN", "RMS"]
    positional_embedding_type: Literal["standard", "rotary"]
    rotary_dim: int  # dimensions of each head that rotate: 0 with standard positions
    parallel_attn_mlp: bool  # GPT-NeoX/Pythia: attention and MLP read the same residual
    n_ctx: int

    def __post_init__(self) -> None:
        check(self.n_layers >= 1, "lm.n_layers must be at least 1")
        check(min(self.d_model, self.d_mlp, self.n_heads, self.d_head) >= 1,
              "lm.d_model, d_mlp, n_heads and d_head must be positive")
        check(self.n_ctx >= 2, "lm.n_ctx must be at least 2")
        if self.positional_embedding_type == "rotary":
            check(0 < self.rotary_dim <= self.d_head and self.rotary_dim % 2 == 0,
                  "lm.rotary_dim must be even and in (0, d_head] with rotary positions")
        else:
            check(self.rotary_dim == 0, "lm.rotary_dim must be 0 with standard positions")


@dataclasses.dataclass(frozen=True)
class LMTrainConfig:
    """Optimisation of a stand-in."""

    n_steps: int
    batch_size: int  # rows of `seq_len` tokens per step
    lr: float  # peak learning rate, reached after warmup
    min_lr_fraction: float  # the decay ends at lr * this
    warmup_steps: int
    schedule: Literal["cosine", "linear"]
    weight_decay: float  # on matrices only (not biases, norms)
    adam_betas: tuple[float, float]
    grad_clip: float  # max global gradient norm
    log_every: int  # history rows (train loss averaged since the previous row)
    eval_every: int  # validation loss; a multiple of log_every
    eval_rows: int  # validation rows used for each evaluation (the first ones)
    checkpoint_every: int
    seed: int

    def __post_init__(self) -> None:
        check(self.n_steps >= 1 and self.batch_size >= 1, "n_steps and batch_size must be >= 1")
        check(self.lr > 0 and 0 <= self.min_lr_fraction <= 1,
              "lr must be positive and min_lr_fraction in [0, 1]")
        check(0 <= self.warmup_steps < self.n_steps, "warmup_steps must be in [0, n_steps)")
        check(self.weight_decay >= 0, "weight_decay must be non-negative")
        check(all(0 <= b < 1 for b in self.adam_betas), "adam_betas must lie in [0, 1)")
        check(self.grad_clip > 0, "grad_clip must be positive")
        check(self.log_every >= 1 and self.eval_every % self.log_every == 0 and self.eval_every > 0,
              "eval_every must be a positive multiple of log_every")
        check(self.eval_rows >= 1 and self.checkpoint_every >= 1,
              "eval_rows and checkpoint_every must be positive")
        check(self.seed >= 0, "seed must be non-negative")


@dataclasses.dataclass(frozen=True)
class StandInConfig:
    """One stand-in model: its architecture and its training (a write-up's `lm` section)."""

    model: LMConfig
    train: LMTrainConfig


# ---------------------------------------------------------------------------------------------
# Building


def _tl_config(cfg: LMConfig, d_vocab: int, seed: int, device: torch.device, fold_ln: bool):
    from transformer_lens import HookedTransformerConfig

    norm = cfg.normalization_type + ("Pre" if fold_ln else "")
    return HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, d_mlp=cfg.d_mlp, n_heads=cfg.n_heads,
        d_head=cfg.d_head, d_vocab=d_vocab, n_ctx=cfg.n_ctx, act_fn=cfg.act_fn,
        normalization_type=norm, positional_embedding_type=cfg.positional_embedding_type,
        rotary_dim=cfg.rotary_dim if cfg.positional_embedding_type == "rotary" else None,
        parallel_attn_mlp=cfg.parallel_attn_mlp, seed=seed, device=str(device),
        default_prepend_bos=True,
    )


def build_model(
    cfg: LMConfig, d_vocab: int, seed: int, device: torch.device | str = "cpu"
) -> "HookedTransformer":
    """A freshly initialised HookedTransformer (initialisation seeded by `seed`)."""
    from transformer_lens import HookedTransformer

    torch.manual_seed(seed)  # TransformerLens draws its initial weights from the global RNG
    return HookedTransformer(_tl_config(cfg, d_vocab, seed, torch.device(device), False))


# ---------------------------------------------------------------------------------------------
# Training


class _Meter(nn.Module):
    """Running sum of the training loss since the last history row (checkpointed)."""

    total: Tensor  # buffers, declared so type checkers know they are tensors
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def take(self) -> float:
        mean = (self.total / self.count.clamp_min(1)).item()
        self.total.zero_()
        self.count.zero_()
        return mean


def lr_at(cfg: LMTrainConfig, step: int) -> float:
    """Linear warmup to `lr`, then cosine or linear decay to `lr * min_lr_fraction`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.n_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * shape)


class LMTrainer:
    """Owns a stand-in, its AdamW state and the loss meter; `step` is one optimiser step."""

    def __init__(
        self, cfg: StandInConfig, train_rows: Int[Tensor, "rows seq"],
        val_rows: Int[Tensor, "val_rows seq"], d_vocab: int, device: torch.device | str = "cpu",
    ) -> None:
        check(train_rows.shape[0] >= 1 and val_rows.shape[0] >= 1, "no token rows to train on")
        self.cfg, self.device = cfg, torch.device(device)
        self.seq_len = min(cfg.model.n_ctx, train_rows.shape[1])
        self.train_rows = train_rows
        self.val_rows = val_rows[: cfg.train.eval_rows, : self.seq_len]
        self.model = build_model(cfg.model, d_vocab, cfg.train.seed, self.device)
        tc = cfg.train
        # Decay matrices only: decaying norm gains and biases towards zero only hurts.
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            [{"params": [p for p in params if p.ndim >= 2], "weight_decay": tc.weight_decay},
             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
            lr=tc.lr, betas=tc.adam_betas,
        )
        self.meter = _Meter()

    def state(self) -> dict[str, Any]:
        return {"model": self.model, "opt": self.opt, "meter": self.meter}

    def batch(self, step: int) -> Int[Tensor, "batch seq"]:
        """The rows of `step`: a pure function of (seed, step), so resumed runs see the same."""
        gen = step_generator(self.cfg.train.seed, step)
        idx = torch.randint(self.train_rows.shape[0], (self.cfg.train.batch_size,), generator=gen)
        return self.train_rows[idx, : self.seq_len].long().to(self.device)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean next-token loss on the fixed validation rows."""
        total, n = 0.0, 0
        bs = self.cfg.train.batch_size
        for start in range(0, self.val_rows.shape[0], bs):
            rows = self.val_rows[start:start + bs].long().to(self.device)
            total += self.model(rows, return_type="loss").item() * rows.shape[0]
            n += rows.shape[0]
        return total / n

    def step(self, step: int) -> dict[str, float]:
        tc = self.cfg.train
        lr = lr_at(tc, step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss = self.model(self.batch(step), return_type="loss")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.opt.step()
        self.meter.add(loss.item())
        last = step == tc.n_steps - 1
        metrics: dict[str, float] = {}
        # train_loop records exactly these steps; the meter averages over the interval.
        if step % tc.log_every == 0 or last:
            metrics["loss"] = self.meter.take()
        if step % tc.eval_every == 0 or last:
            metrics["val_loss"] = self.evaluate()
        metrics["lr"] = lr
        return metrics


def fingerprint(cfg: StandInConfig, d_vocab: int, data_id: str) -> str:
    """Identifies a training run: a checkpoint written for anything else is not resumed."""
    return config_hash({"cfg": to_dict(cfg), "d_vocab": d_vocab, "data": data_id})


def train_lm(
    cfg: StandInConfig,
    train_rows: Int[Tensor, "rows seq"],
    val_rows: Int[Tensor, "val_rows seq"],
    d_vocab: int,
    checkpoint_path: Path | None,
    data_id: str,
    device: torch.device | str = "cpu",
    desc: str = "lm",
) -> tuple["HookedTransformer", list[dict[str, float]], float]:
    """Train a stand-in (resuming from `checkpoint_path` if it holds a matching checkpoint).

    `data_id` names the token rows (e.g. their sha256) for the checkpoint fingerprint.
    Returns the model, the history and the training throughput in tokens/s (this process).
    """
    trainer = LMTrainer(cfg, train_rows, val_rows, d_vocab, device)
    started, t0 = None, time.perf_counter()

    def step_fn(step: int) -> dict[str, float]:
        nonlocal started
        started = step if started is None else started
        return trainer.step(step)

    history = train_loop(
        step_fn, cfg.train.n_steps, trainer.state(), checkpoint_path,
        fingerprint(cfg, d_vocab, data_id), checkpoint_every=cfg.train.checkpoint_every,
        log_every=cfg.train.log_every, desc=desc,
    )
    steps_run = cfg.train.n_steps - (started if started is not None else cfg.train.n_steps)
    elapsed = time.perf_counter() - t0
    tokens_per_s = steps_run * cfg.train.batch_size * trainer.seq_len / max(elapsed, 1e-9)
    return trainer.model, history, tokens_per_s


def plot_loss_curve(
    history: Sequence[dict[str, float]], tokens_per_step: int, png_path: Path, provenance: Any,
    title: str,
) -> None:
    """Train (interval mean) and validation loss against tokens seen, via shared.figures."""
    from shared.figures import apply_style, plt, save_figure

    apply_style()
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    # A history row at step s was logged after s + 1 optimiser steps.
    train = [((r["step"] + 1) * tokens_per_step, r["loss"]) for r in history if "loss" in r]
    val = [((r["step"] + 1) * tokens_per_step, r["val_loss"]) for r in history if "val_loss" in r]
    ax.plot([s for s, _ in train], [v for _, v in train], label="train (mean since last point)")
    ax.plot([s for s, _ in val], [v for _, v in val], marker="o", markersize=3, label="validation")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, png_path, provenance)


# ---------------------------------------------------------------------------------------------
# Saving and loading


def save_model(
    model: "HookedTransformer", cfg: LMConfig, d_vocab: int, out_dir: Path,
    tokenizer_dir: Path | None, extra: dict[str, Any] | None = None,
) -> None:
    """Write `model.safetensors`, `lm_config.json` and (if given) the tokenizer files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Fixed masks and rotary tables are rebuilt from the config: store trained weights only.
    names = {n for n, _ in model.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if k in names}
    save_tensors(out_dir / MODEL_FILE, state, {"format": LOCAL_FORMAT})
    write_json(out_dir / CONFIG_FILE,
               {"format": LOCAL_FORMAT, "model": to_dict(cfg), "d_vocab": d_vocab,
                **(extra or {})})
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_dir) / name
            if src.is_file():
                shutil.copyfile(src, out_dir / name)


def is_local_model(spec: str | Path) -> bool:
    return (Path(spec) / CONFIG_FILE).is_file()


def _processing(processed: bool) -> dict[str, Any]:
    # TransformerLens's from_pretrained defaults; they leave log-probabilities unchanged.
    return {"fold_ln": processed, "center_writing_weights": processed,
            "center_unembed": processed, "fold_value_biases": processed}


def _load_local(path: Path, device: torch.device, processed: bool) -> "HookedTransformer":
    from transformer_lens import HookedTransformer

    meta = read_json(path / CONFIG_FILE)
    if meta.get("format") != LOCAL_FORMAT:
        raise ValueError(f"{path / CONFIG_FILE}: not a {LOCAL_FORMAT} model")
    cfg = build(LMConfig, meta["model"], str(path / CONFIG_FILE))
    tl_cfg = _tl_config(cfg, int(meta["d_vocab"]), 0, device, fold_ln=processed)
    tl_cfg.init_weights = False
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = HookedTransformer(tl_cfg, tokenizer=tokenizer, move_to_device=False)
    state = load_tensors(path / MODEL_FILE)
    if processed:
        model.load_and_process_state_dict(state, **_processing(True))
    else:
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Only the fixed buffers (masks, rotary tables) may be absent from the file.
        params = {n for n, _ in model.named_parameters()}
        bad = [k for k in missing if k in params] + list(unexpected)
        if bad:
            raise ValueError(f"{path / MODEL_FILE}: weights do not match the config ({bad[0]})")
    return model.to(device).eval()


def _load_neel(official: str, device: torch.device, processed: bool) -> "HookedTransformer":
    """NeelNanda's models (gelu-1l): config.json and a pickled state dict, read safely."""
    from huggingface_hub import hf_hub_download
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    cfg = loading.get_pretrained_model_config(official, fold_ln=processed, device=device)
    weights = hf_hub_download(official, NEEL_WEIGHTS_FILE)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(state, **_processing(processed))
    return model.to(device).eval()


def load_model(
    spec: str | Path, device: str = "auto", processed: bool = True
) -> "HookedTransformer":
    """A HookedTransformer from a stand-in directory or a Hugging Face model name.

    `processed` applies TransformerLens's usual weight processing (fold LayerNorm, centre
    writing weights and unembedding), as `HookedTransformer.from_pretrained` does by default.
    Names are resolved through TransformerLens's alias table (`gelu-1l`, `gpt2-xl`,
    `EleutherAI/pythia-2.8b`, ...); the Hugging Face cache and `HF_HUB_OFFLINE` apply.
    """
    dev = pick_device(device)
    if is_local_model(spec):
        return _load_local(Path(spec), dev, processed)
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_official_model_name

    official = get_official_model_name(str(spec))
    if official.startswith("NeelNanda/"):
        return _load_neel(official, dev, processed)
    model = HookedTransformer.from_pretrained(official, device=str(dev), **_processing(processed))
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Paper data sets


def _open_dataset(name: str, split: str, streaming: bool):  # noqa: ANN202
    import datasets

    path = Path(name)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "state.json").is_file()
                          or (path / "dataset_dict.json").is_file()):
        ds = datasets.load_from_disk(str(path))  # a Dataset(Dict).save_to_disk directory
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    return datasets.load_dataset(name, split=split, streaming=streaming)


def iter_token_rows(
    name: str,
    seq_len: int,
    batch_rows: int,
    tokenizer: Any = None,
    split: str = "train",
    streaming: bool = True,
) -> Iterator[Int[Tensor, "batch_rows seq_len"]]:
    """Rows of `seq_len` tokens (int32) of a data set in order, `batch_rows` at a time.

    A data set with a `tokens` column (`NeelNanda/c4-code-tokenized-2b`: 128-token rows, BOS
    first) is used as it is (rows cut to `seq_len`). One with a `text` column
    (`NeelNanda/pile-10k`) is tokenized with `tokenizer` (a transformers tokenizer) and packed
    like the local corpus: documents joined by EOS, rows of `seq_len - 1` after a BOS.
    `name` may be a hub name (streamed), a local data directory or a `save_to_disk` directory.
    The last batch may be short.
    """
    examples = iter(_open_dataset(name, split, streaming))
    try:
        first = next(examples)
    except StopIteration:
        raise ValueError(f"data set {name} ({split}) is empty") from None
    if "tokens" not in first and "text" not in first:
        raise ValueError(f"data set {name}: expected a 'tokens' or 'text' column: {list(first)}")
    if "text" in first and "tokens" not in first and tokenizer is None:
        raise ValueError(f"data set {name} holds raw text: pass the model's tokenizer")
    if tokenizer is not None:
        # Tokenizers without a BOS (GPT-NeoX's uses <|endoftext|> for both) fall back to EOS.
        eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
        eos = bos if eos is None else eos
        bos = eos if bos is None else bos
    rows: list[list[int]] = []
    stream: list[int] = []  # tokens not yet in a row, carried across documents
    pending: list[str] = []
    body = seq_len - 1

    def pack(texts: list[str]) -> None:
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
        full = len(stream) // body
        rows.extend([bos] + stream[i * body:(i + 1) * body] for i in range(full))
        del stream[: full * body]

    for ex in itertools.chain([first], examples):
        if "tokens" in ex:
            toks = list(ex["tokens"])
            if len(toks) < seq_len:
                raise ValueError(f"data set {name}: a row has {len(toks)} < {seq_len} tokens")
            rows.append(toks[:seq_len])
        else:
            pending.append(ex["text"])
            if len(pending) == 256:  # tokenize in batches: the fast tokenizer is parallel
                pack(pending)
                pending = []
        while len(rows) >= batch_rows:
            yield torch.tensor(rows[:batch_rows], dtype=torch.int32)
            del rows[:batch_rows]
    if pending:
        pack(pending)
    while rows:
        yield torch.tensor(rows[:batch_rows], dtype=torch.int32)
        del rows[:batch_rows]


def load_token_dataset(
    name: str,
    n_rows: int,
    seq_len: int,
    tokenizer: Any = None,
    split: str = "train",
    streaming: bool = True,
) -> Int[Tensor, "n_rows seq_len"]:
    """The first `n_rows` rows of `seq_len` tokens of a data set (see `iter_token_rows`)."""
    parts, have = [], 0
    for batch in iter_token_rows(name, seq_len, min(n_rows, 4096), tokenizer, split, streaming):
        parts.append(batch[: n_rows - have])
        have += parts[-1].shape[0]
        if have >= n_rows:
            break
    if have < n_rows:
        raise ValueError(f"data set {name} ({split}) gives {have} rows, {n_rows} wanted")
    return torch.cat(parts)


def write_history(path: Path, history: Sequence[dict[str, float]], extra: dict[str, Any]) -> None:
    """The training history as JSON (deterministic content: no timings)."""
    write_json(Path(path), {"history": list(history), **extra})


def describe_model(model: "HookedTransformer") -> str:
    cfg = model.cfg
    n = sum(p.numel() for p in model.parameters())
    return json.dumps({"n_layers": cfg.n_layers, "d_model": cfg.d_model, "d_mlp": cfg.d_mlp,
                       "d_vocab": cfg.d_vocab, "params": n})
