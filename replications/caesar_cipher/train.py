"""Training the post's model on one mode: the fixed data sets, the model, the loop.

The model is the post's: attention only, 2 layers of 2 heads, d_model 48, d_head 24, LayerNorm
before each layer and at the end, single-character tokens in, 26 rotations out. Training: Adam
with weight decay (L2, as torch's Adam applies it), learning rate falling linearly from `lr` to
`lr_end` over all steps, cross-entropy at every position against the sequence's rotation. The
training set is fixed (`n_train` sequences) and read in epochs, each in its own order drawn
from (seed, epoch), so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig

from replications.caesar_cipher import data
from replications.caesar_cipher.config import Config, Mode, ModelConfig
from shared.config import config_hash, to_dict
from shared.io import load_tensors, save_tensors
from shared.training import train_loop

MODE_INDEX = {m: i for i, m in enumerate(data.MODES)}


def build_model(cfg: ModelConfig, mode: Mode, seq_len: int,
                device: torch.device | str = "cpu") -> HookedTransformer:
    tl_cfg = HookedTransformerConfig(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_head,
        d_mlp=None, attn_only=True, n_ctx=seq_len, d_vocab=data.d_vocab(mode),
        d_vocab_out=data.N_ROT, normalization_type=cfg.normalization,
        attention_dir=cfg.attention, seed=cfg.seed, device=str(device),
        default_prepend_bos=False,
    )
    return HookedTransformer(tl_cfg)


@dataclasses.dataclass(frozen=True)
class ModeData:
    """One mode's fixed training and validation sets and the word list behind them."""

    mode: Mode
    train: data.Split
    val: data.Split
    words: data.WordList


def mode_data(cfg: Config, mode: Mode, text: str | None = None) -> ModeData:
    """The training and validation sets of `mode`, from the data seed (and the mode)."""
    text = data.source_text() if text is None else text
    words = data.word_list(text, cfg.data.word_list_size)
    train_text, val_text = data.text_split(text, cfg.data.val_text_fraction)
    base = cfg.data.seed * 1000 + 10 * MODE_INDEX[mode]
    d = cfg.data
    return ModeData(
        mode,
        data.make_split(mode, d.n_train, d.seq_len, words, train_text, base + 1),
        data.make_split(mode, d.n_val, d.seq_len, words, val_text, base + 2),
        words,
    )


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at every position against the sequence's rotation."""
    b, s, v = logits.shape
    return F.cross_entropy(logits.reshape(b * s, v), labels.repeat_interleave(s))


def fingerprint(cfg: Config, mode: Mode) -> str:
    """What a checkpoint must match: the data, model and training settings (not the analysis)."""
    return f"{config_hash((cfg.data, cfg.model, cfg.train))}:{mode}"


def train(cfg: Config, mode: Mode, md: ModeData, checkpoint_path: Path | None,
          device: torch.device | str = "cpu") -> tuple[HookedTransformer, list[dict[str, float]]]:
    """Train the post's model on `mode`; returns it (eval mode) and the logged history."""
    t = cfg.train
    model = build_model(cfg.model, mode, cfg.data.seq_len, device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    steps_per_epoch = max(1, cfg.data.n_train // t.batch_size)
    n_steps = t.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 - (1.0 - t.lr_end / t.lr) * min(s, n_steps) / n_steps)
    x_all, y_all = md.train.tokens.to(device), md.train.labels.to(device)
    seed = cfg.data.seed * 1000 + 10 * MODE_INDEX[mode] + 7

    def order(epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return torch.randperm(cfg.data.n_train, generator=gen)

    cache: dict[int, torch.Tensor] = {}

    def step_fn(step: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(step, steps_per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = order(epoch)
        idx = cache[epoch][i * t.batch_size:(i + 1) * t.batch_size].to(device)
        logits = model(x_all[idx])
        loss = loss_fn(logits, y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            acc = (logits[:, -1].argmax(-1) == y_all[idx]).float().mean()
        return {"loss": loss.detach(), "acc_last": acc}

    model.train()
    history = train_loop(
        step_fn, n_steps, {"model": model, "opt": opt, "sched": sched}, checkpoint_path,
        fingerprint(cfg, mode), checkpoint_every=t.checkpoint_every, log_every=t.log_every,
        desc=f"caesar {mode}", per_step=("sequences", t.batch_size),
    )
    model.eval()
    return model, history


def save_model(model: HookedTransformer, cfg: Config, mode: Mode, out: Path) -> None:
    """Weights as safetensors; the model settings in the metadata."""
    meta = {"mode": mode, "model": json.dumps(to_dict(cfg.model)), "seq_len": str(cfg.data.seq_len)}
    save_tensors(out, model.state_dict(), meta)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[HookedTransformer, Mode]:
    """A model saved by `save_model`, frozen, in eval mode, and its mode."""
    from shared.io import load_metadata

    meta = load_metadata(Path(path))
    if "mode" not in meta:
        raise ValueError(f"{path}: not a Caesar-cipher model (no mode in its metadata)")
    mode: Mode = meta["mode"]  # type: ignore[assignment]
    mcfg = ModelConfig(**{k: v for k, v in json.loads(meta["model"]).items()})
    model = build_model(mcfg, mode, int(meta["seq_len"]), device)
    model.load_state_dict(load_tensors(Path(path), device))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, mode
