"""Shared fixtures: the repository root and a runner for the project's command-line tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

import shared  # noqa: F401  (pins the kernels before torch's first op, as in every DAG job)

# One intra-op thread: tests are many small ops, where a second thread mostly waits (and on a
# shared 2-core machine makes them ~10x slower). Training code sets its own threads.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def one_thread():  # noqa: ANN201
    """One intra-op thread for a module of tiny-tensor tests, restored after it: a second thread
    only adds OpenMP spin-waiting on shared cores (scripts a test runs may set their own)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def claims_file(tmp_path: Path) -> Callable[..., Path]:
    """Writes a demo write-up's claims file from short claim dicts (each needs id, metric, check
    and profiles; statement, source and published get placeholders) and returns its path."""

    def write(claims: list[dict], name: str = "claims.yaml") -> Path:
        full = [{"statement": c["id"], "source": "test", "published": "-", **c} for c in claims]
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"writeup": "demo", "title": "Demo write-up",
                                        "claims": full}, sort_keys=False))
        return path

    return write


def crash_at_step(monkeypatch: pytest.MonkeyPatch, trainer: type, step: int) -> Callable[[], None]:
    """Make `trainer.step` raise RuntimeError("simulated crash") at `step`, as a job killed
    there; returns the function that puts the real step back."""
    real = trainer.step

    def crashing(self, at: int):  # noqa: ANN001, ANN202
        if at == step:
            raise RuntimeError("simulated crash")
        return real(self, at)

    monkeypatch.setattr(trainer, "step", crashing)
    return lambda: monkeypatch.setattr(trainer, "step", real)


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command with the project's virtual environment first on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_checkout(dest: Path) -> Path:
    """Copy the files git knows about (tracked and untracked-not-ignored) and the corpus data
    env/bootstrap.sh downloads into `dest`: a fresh clone after bootstrap."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # What env/bootstrap.sh downloads into a fresh clone (git-ignored, sha256-checked on use).
    downloads = ROOT / "env" / "downloads"
    if downloads.is_dir():
        shutil.copytree(downloads, dest / "env" / "downloads", dirs_exist_ok=True)
    return dest


def hf_cache_repo(hub: Path, repo_id: str, missing: tuple[str, ...] = ()) -> Path:
    """A Hugging Face cache entry for `repo_id` (refs/main -> one snapshot), as a download leaves
    it; returns the snapshot folder. `missing` files are recorded as known-absent (`.no_exist`),
    which is how the cache answers offline for files a repository does not have."""
    base = hub / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for name in missing:
        (base / ".no_exist" / commit).mkdir(parents=True, exist_ok=True)
        (base / ".no_exist" / commit / name).touch()
    return snap


def gelu_1l_in_hub(hub: Path, d_vocab: int, d_mlp: int, seq_len: int, texts: list[str]):  # noqa: ANN201
    """A tiny gelu-1l (Neel Nanda's GELU_1L512W_C4_Code layout: config.json + weights) and its
    digit-splitting tokenizer, both in the cache at `hub`; returns (model, HF tokenizer)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from shared import lm
    from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer

    tl = HookedTransformer(HookedTransformerConfig(
        n_layers=1, d_model=16, d_mlp=d_mlp, n_heads=2, d_head=8, n_ctx=seq_len,
        d_vocab=d_vocab, act_fn="gelu", normalization_type="LN", seed=0)).eval()
    snap = hf_cache_repo(hub, "NeelNanda/GELU_1L512W_C4_Code")
    (snap / "config.json").write_text(json.dumps({
        "n_layers": 1, "d_model": 16, "d_mlp": d_mlp, "d_head": 8, "n_heads": 2,
        "n_ctx": seq_len, "d_vocab": d_vocab, "act_fn": "gelu", "attn_only": False,
        "normalization": "LN", "shortformer_pos": False, "ln_eps": 1e-5,
        "tokenizer_name": "NeelNanda/gpt-neox-tokenizer-digits",
    }))
    torch.save(tl.state_dict(), snap / lm.NEEL_WEIGHTS_FILE)
    tok = hf_tokenizer(train_tokenizer(texts, TokenizerConfig(
        vocab_size=d_vocab, min_frequency=1, split_digits=True, train_bytes=10**6,
        seq_len=seq_len)))
    tok.save_pretrained(str(hf_cache_repo(hub, "NeelNanda/gpt-neox-tokenizer-digits",
                                          ("config.json",))))
    return tl, tok


def config_copy(config_dir: Path, dest: Path, **profiles: dict) -> Path:
    """A copy of a write-up's config directory at `dest`, each of `profiles` (name -> settings)
    written over its profile file."""
    import yaml

    shutil.copytree(config_dir, dest)
    for profile, data in profiles.items():
        (dest / f"{profile}.yaml").write_text(yaml.safe_dump(data))
    return dest


def assert_figures_written(writeup: str, figure_dir: Path) -> None:
    """Every figure `writeup`'s manifest declares is in `figure_dir` as PNG and PDF, each more
    than a blank canvas."""
    from shared import pipeline

    for name in pipeline.figures(writeup):
        for ext in ("png", "pdf"):
            assert (figure_dir / f"{name}.{ext}").stat().st_size > 2000, name


def user_error(capsys: pytest.CaptureFixture[str], main: Callable[[], None]) -> str:
    """Run a script's `main` as its command line does (`shared.cli.run`), expecting a user
    error: exit status 1 and no traceback; returns what it wrote on stderr."""
    from shared.cli import run as run_script

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_script(main)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def offline_hf_env(hf_home: Path) -> dict[str, str]:
    """The environment of a subprocess that finds Hugging Face models and data sets only in the
    cache under `hf_home` (as `hf_cache_repo` writes it), offline."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # Either would point the hub at another cache than HF_HOME's.
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    return env


def tiny_pythia(root: Path, texts: list[str], vocab_size: int):  # noqa: ANN201
    """A random, Pythia-shaped 6-layer stand-in with a tokenizer trained on `texts`, saved under
    `root` (lm/, tok/) and loaded back; weights enlarged so answers vary with the name."""
    from shared import lm
    from shared.lm import LMConfig
    from shared.tokenizer import TokenizerConfig, hf_tokenizer, train_tokenizer

    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=vocab_size, min_frequency=1,
                                                 split_digits=True, train_bytes=10**7,
                                                 seq_len=32))
    hf_tokenizer(tok).save_pretrained(str(root / "tok"))
    cfg = LMConfig(n_layers=6, d_model=32, d_mlp=64, n_heads=2, d_head=16, act_fn="gelu",
                   normalization_type="LN", positional_embedding_type="rotary", rotary_dim=8,
                   parallel_attn_mlp=True, n_ctx=32)
    d_vocab = tok.get_vocab_size()
    model = lm.build_model(cfg, d_vocab, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0) if p.ndim > 1 else p.add_(0.3 * torch.randn_like(p))
    lm.save_model(model, cfg, d_vocab, root / "lm", root / "tok")
    return lm.load_model(root / "lm", "cpu")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
