"""The model zoo's SAEs: a residual-stream SAE that stands in for a published one, obtained by
training it on a (stand-in) language model or by loading a SAELens directory, then evaluated.

Settings come from the owner write-up's config, as one `ZooSAEConfig` (the rule passes it as
JSON; shared/zoo.smk): its `sae` section (`shared.sae.SAEConfig`), its `sae_run` section
(`SAERunConfig`: where the SAE comes from, the activation buffer and cadence), the site (which
model and hook), which token rows train and evaluate it, and the evaluation's thresholds.

Training uses the shared pieces: the shuffled `ActivationBuffer` (refilled with fresh rows when
half served; the BOS position left out when `drop_bos`, as its residual norm is far larger
than any other) feeding `shared.sae_train.train_sae` (untied encoder/decoder, pre-encoder bias,
unit-norm decoder rows, L1, resampling), checkpointed with the buffer's state so a killed run
resumes. Loading takes a user-supplied SAELens directory (`shared.sae_io.load_sae_lens`),
checked against the model's width and the hook.

Either way `evaluate` splices the SAE into the LM on held-out rows (`shared.sae_eval`): clean
and spliced next-token loss, loss recovered against zero ablation, L0, and each feature's
firing frequency (features firing on more than `evaluation.dense_frequency` of the tokens are
the "dense" ones). `save` writes the zoo folder that `shared.sae_io.load_sae` reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from shared.activations import ActivationBuffer, BufferConfig
from shared.config import ConfigError, check, config_hash, to_dict
from shared.io import BadInput, save_tensors, write_json
from shared.sae import SAE, SAEConfig
from shared.sae_eval import SAEEvalConfig, SAEEvaluator
from shared.sae_io import (
    CFG_FILENAME,
    FREQUENCY_FILE,
    SAELensInfo,
    load_sae_lens,
    save_sae_lens,
)
from shared.sae_train import train_sae
from shared.tokenizer import TokenRows

HISTORY_FILE = "history.json"
EVAL_FILE = "eval.json"


@dataclasses.dataclass(frozen=True)
class SAERunConfig:
    """Where the SAE comes from, and the buffer and cadence when it is trained here (an owner
    write-up's `sae_run` section)."""

    source: Literal["train", "load"]
    load_dir: str  # load: a SAELens-format directory (cfg.json, sae_weights.safetensors); else ""
    n_activations: int  # activation buffer, refilled with fresh rows when half served
    rows_per_batch: int  # rows per model forward pass when refilling
    drop_bos: bool  # leave the BOS position (huge residual norm) out of training and evaluation
    log_every: int
    checkpoint_every: int
    precision: Literal["fp32", "tf32", "bf16"]
    eval_batch_rows: int  # rows per forward pass when evaluating

    def __post_init__(self) -> None:
        if self.source == "load":
            check(bool(self.load_dir), "sae_run.load_dir is needed with source: load")
        else:
            check(self.load_dir == "", "sae_run.load_dir must be empty with source: train")
        check(min(self.n_activations, self.rows_per_batch, self.log_every,
                  self.checkpoint_every, self.eval_batch_rows) >= 1,
              "sae_run sizes and cadences must be positive")


@dataclasses.dataclass(frozen=True)
class SAESite:
    """Which model the SAE reads, where, and on which device it runs."""

    model_name: str  # recorded as model_name in the SAELens cfg.json
    hook_name: str  # e.g. blocks.<layer>.hook_resid_pre
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check(bool(self.model_name) and bool(self.hook_name),
              "the SAE's site needs a model_name and a hook_name")


@dataclasses.dataclass(frozen=True)
class SAERows:
    """Which rows of the tokens file train and evaluate the SAE."""

    seq_len: int  # training rows (train split) are cut to their first seq_len tokens
    eval_rows: int  # the first eval_rows held-out rows (val split) evaluate it

    def __post_init__(self) -> None:
        check(self.seq_len >= 2 and self.eval_rows >= 1,
              "the SAE's rows need seq_len >= 2 and eval_rows >= 1")


@dataclasses.dataclass(frozen=True)
class SAEEvalSettings:
    """Thresholds of the evaluation's frequency shares."""

    dense_frequency: float  # eval.json's dense share: features firing on more than this share
    # Dead / ultra-low shares are computed by shared.sae_eval with this threshold but not
    # written to eval.json, so no owner sets it.
    ultra_low_frequency: float = 1e-4

    def __post_init__(self) -> None:
        check(0 < self.dense_frequency < 1, "dense_frequency must lie in (0, 1)")


@dataclasses.dataclass(frozen=True)
class ZooSAEConfig:
    """Everything the zoo's SAE rule needs, from the owner write-up's config."""

    sae: SAEConfig
    run: SAERunConfig
    site: SAESite
    rows: SAERows
    evaluation: SAEEvalSettings

    def __post_init__(self) -> None:
        self.sae.check_one_per_run("sae_run", self.run.n_activations)


@dataclasses.dataclass(frozen=True)
class ZooSAE:
    """An SAE as the zoo obtained it: the SAE, its firing frequencies on the evaluation rows,
    the evaluation (eval.json) and the training history (empty when loaded)."""

    sae: SAE
    frequency: Float[Tensor, " d_sae"]
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    context_size: int


def buffer_config(cfg: ZooSAEConfig) -> BufferConfig:
    r = cfg.run
    return BufferConfig(hook_name=cfg.site.hook_name, n_activations=r.n_activations,
                        batch_size=cfg.sae.batch_size, rows_per_batch=r.rows_per_batch,
                        reserved_rows=0, drop_bos=r.drop_bos, seed=cfg.sae.seed)


def eval_config(cfg: ZooSAEConfig) -> SAEEvalConfig:
    return SAEEvalConfig(hook_name=cfg.site.hook_name, batch_rows=cfg.run.eval_batch_rows,
                         drop_bos=cfg.run.drop_bos,
                         ultra_low_frequency=cfg.evaluation.ultra_low_frequency)


def sae_info(cfg: ZooSAEConfig, context_size: int) -> SAELensInfo:
    return SAELensInfo(model_name=cfg.site.model_name, hook_name=cfg.site.hook_name,
                       context_size=context_size, prepend_bos=True)


def select_rows(rows: TokenRows, r: SAERows, rows_per_batch: int, where: str
                ) -> tuple[Int[Tensor, "rows seq"], Int[Tensor, "rows seq"]]:
    """The training rows (cut to `r.seq_len`) and the held-out evaluation rows, checked against
    the buffer's `rows_per_batch` (`where` names the tokens file in errors)."""
    if rows.val.shape[0] < r.eval_rows:
        raise ConfigError(f"{where}: {rows.val.shape[0]} held-out rows, the SAE's evaluation "
                          f"wants {r.eval_rows}")
    if rows.train.shape[1] < r.seq_len:
        raise ConfigError(f"{where}: training rows shorter than the SAE's seq_len {r.seq_len}")
    if rows.train.shape[0] < rows_per_batch:
        raise ConfigError(f"{where}: too few training rows for sae_run.rows_per_batch")
    return rows.train[:, : r.seq_len], rows.val[: r.eval_rows]


def check_site(cfg: ZooSAEConfig, model: Any) -> None:
    """The hook exists in the model, and a trained SAE's width matches it (ConfigError)."""
    if cfg.site.hook_name not in model.hook_dict:
        raise ConfigError(f"{cfg.site.hook_name}: no such hook in the model "
                          f"({model.cfg.n_layers} layers)")
    if cfg.run.source == "train" and cfg.sae.d_in != model.cfg.d_model:
        raise ConfigError(f"sae.d_in {cfg.sae.d_in} != the model's d_model {model.cfg.d_model}")


def train(
    cfg: ZooSAEConfig, model: Any, rows: Int[Tensor, "rows seq"], checkpoint: Path | None,
    data_id: str, desc: str = "sae",
) -> tuple[SAE, list[dict[str, float]]]:
    """Train the SAE on the model's activations at the site (resumable from `checkpoint`)."""
    buffer = ActivationBuffer(model, rows, buffer_config(cfg))
    device = next(model.parameters()).device
    fingerprint = config_hash({"sae": to_dict(cfg.sae), "run": to_dict(cfg.run),
                               "site": to_dict(cfg.site), "data": data_id})
    return train_sae(cfg.sae, buffer.sample, checkpoint, fingerprint, device, desc=desc,
                     checkpoint_every=cfg.run.checkpoint_every, log_every=cfg.run.log_every,
                     data_state=buffer, precision=cfg.run.precision)


def load(path: Path, cfg: ZooSAEConfig, d_model: int, device: torch.device) -> SAE:
    """A user-supplied SAELens directory, checked against the model's width and the hook."""
    path = Path(path)
    if not (path / CFG_FILENAME).is_file():
        raise FileNotFoundError(f"{path}: not a SAELens directory (no {CFG_FILENAME})")
    try:
        sae, sae_cfg, _ = load_sae_lens(path, device)
    except (ValueError, KeyError) as err:  # an unsupported or malformed directory: one line
        raise BadInput(str(err)) from err
    if sae.d_in != d_model:
        raise BadInput(f"{path}: SAE d_in {sae.d_in} != the model's d_model {d_model}")
    hook = (sae_cfg.get("metadata") or {}).get("hook_name") or sae_cfg.get("hook_name")
    if hook is not None and hook != cfg.site.hook_name:
        raise BadInput(f"{path}: SAE reads {hook}, the site is {cfg.site.hook_name}")
    return sae


def evaluate(
    cfg: ZooSAEConfig, model: Any, sae: SAE, rows: Int[Tensor, "rows seq"]
) -> tuple[dict[str, Any], Float[Tensor, " d_sae"]]:
    """Spliced-loss metrics and firing frequencies on held-out rows."""
    res = SAEEvaluator(model, rows, eval_config(cfg)).evaluate(sae)

    def first(key: str) -> Tensor:  # the one instance's value of a per-instance metric
        value = res[key]
        assert isinstance(value, Tensor), key
        return value[0]

    freq = first("frequency").cpu()
    dense = cfg.evaluation.dense_frequency
    metrics = {
        "ce_clean": float(res["ce_clean"]),
        "ce_sae": float(first("ce_sae")),
        "ce_zero_ablation": float(res["ce_zero_abl"]),
        "loss_recovered": float(first("loss_recovered")),
        "l0": float(first("l0")),
        "mse": float(first("mse")),
        "dead_fraction": float((freq == 0).double().mean()),
        "dense_fraction": float((freq > dense).double().mean()),
        "n_dense": float((freq > dense).sum()),
        "d_sae": float(sae.d_sae),
        "n_eval_tokens": float(rows.shape[0] * (rows.shape[1] - int(cfg.run.drop_bos))),
    }
    return metrics, freq


def obtain(cfg: ZooSAEConfig, model: Any, rows: TokenRows, checkpoint: Path | None,
           where: str = "tokens", desc: str = "sae") -> ZooSAE:
    """The zoo's SAE: trained on `rows` (`sae_run.source: train`, resumable from
    `checkpoint`) or loaded from `sae_run.load_dir` (`load`), then evaluated on the held-out
    rows. User errors (a bad site, too few rows, an unfitting SAELens directory) raise
    ConfigError / BadInput / FileNotFoundError (one line under `shared.cli.run`) before any
    training."""
    train_rows, eval_rows = select_rows(rows, cfg.rows, cfg.run.rows_per_batch, where)
    check_site(cfg, model)
    history: list[dict[str, float]] = []
    if cfg.run.source == "train":
        sae, history = train(cfg, model, train_rows, checkpoint, rows.sha256, desc)
    else:
        sae = load(Path(cfg.run.load_dir), cfg, model.cfg.d_model,
                   next(model.parameters()).device)
    metrics, freq = evaluate(cfg, model, sae, eval_rows)
    metrics["source"] = cfg.run.source
    return ZooSAE(sae, freq, metrics, history, int(train_rows.shape[1]))


def save(out_dir: Path, cfg: ZooSAEConfig, got: ZooSAE) -> None:
    """The zoo folder: the SAELens directory (with log10 sparsity), the raw frequencies, the
    training history and the evaluation."""
    out_dir = Path(out_dir)
    save_tensors(out_dir / FREQUENCY_FILE, {"frequency": got.frequency.double()})
    save_sae_lens(out_dir, got.sae, 0, sae_info(cfg, got.context_size), got.frequency.float())
    write_json(out_dir / HISTORY_FILE, {"history": got.history,
                                        "tokens_per_step": cfg.sae.batch_size})
    write_json(out_dir / EVAL_FILE, got.metrics)
