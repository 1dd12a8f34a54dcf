"""Faults injected into the resumable training loop and its scripts, each with its exact outcome:
divergence (NaN) stops with one line naming the step and keeps the last good checkpoint; a
corrupt, truncated, NaN-filled or misfitting checkpoint is moved aside and training resumes from
the previous one or from scratch, ending equal to an uninterrupted run; SIGTERM stops a real
script with one line, no traceback, and a rerun resumes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from shared.io import load_metadata, load_tensors, save_tensors
from shared.training import TrainingDiverged, _checksum, previous_path, train_loop
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
Y = X @ torch.randn(8, 1, generator=torch.Generator().manual_seed(1))


class Crash(RuntimeError):
    pass


def make(width: int = 8):
    torch.manual_seed(0)
    model = torch.nn.Linear(width, 1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def run(ckpt: Path | None, n_steps: int = 60, crash_at: int | None = None,
        nan_at: int | None = None, width: int = 8):
    model, opt = make(width)

    def step(i: int) -> dict[str, float]:
        if i == crash_at:
            raise Crash(f"crash at {i}")
        if i == nan_at:
            with torch.no_grad():
                model.weight[0, 0] = float("nan")
        loss = (model(X[:, :width]) - Y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    hist = train_loop(step, n_steps, {"model": model, "opt": opt}, ckpt, "fp",
                      checkpoint_every=20, log_every=10, desc="toy")
    return model, hist


def crash_leaving_two_checkpoints(ckpt: Path) -> None:
    with pytest.raises(Crash):
        run(ckpt, crash_at=45)  # checkpoints at steps 20 (prev) and 40 (latest)
    assert int(load_metadata(ckpt)["step"]) == 40
    assert int(load_metadata(previous_path(ckpt))["step"]) == 20


def assert_equal_to_uninterrupted(model, hist) -> None:
    ref, ref_hist = run(None)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), model.parameters()))
    assert hist == ref_hist


def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(TrainingDiverged, match=r"toy diverged: loss = nan at step 30; the last "
                                               r"good checkpoint \(step 20\) is kept"):
        run(ckpt, nan_at=25)
    tensors = load_tensors(ckpt)
    assert int(load_metadata(ckpt)["step"]) == 20
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_nan_between_logged_steps_is_caught_before_the_checkpoint(tmp_path: Path) -> None:
    # NaN written at step 39 after the last log (30): the checkpoint due at 40 refuses it.
    model, opt = make()

    def step(i: int) -> dict[str, float]:
        if i == 39:
            with torch.no_grad():
                model.bias.fill_(float("inf"))
        return {} if i % 10 else {"loss": 1.0}

    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(TrainingDiverged, match=r"non-finite values in model.bias at step 40"):
        train_loop(step, 60, {"model": model, "opt": opt}, ckpt, "fp", checkpoint_every=20,
                   log_every=10, desc="toy")
    assert int(load_metadata(ckpt)["step"]) == 20


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-20:-10] = bytes(10 * [0x7F])  # tensor data, past the header
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_fill(path: Path) -> None:
    # A well-formed file with a valid checksum whose weights are NaN (e.g. a diverged run
    # written by an older version): only the finiteness check can catch it.
    meta, tensors = load_metadata(path), load_tensors(path)
    tensors = {k: torch.full_like(v, float("nan")) if v.is_floating_point() and v.ndim == 2 else v
               for k, v in tensors.items()}
    meta["checksum"] = _checksum(tensors)
    save_tensors(path, tensors, meta)


@pytest.mark.parametrize("damage", [_corrupt, _truncate, _nan_fill])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path: Path, damage,
                                                              capsys) -> None:
    ckpt = tmp_path / "c.safetensors"
    crash_leaving_two_checkpoints(ckpt)
    damage(ckpt)
    model, hist = run(ckpt)
    err = capsys.readouterr().err
    assert f"{ckpt} is damaged" in err and "resuming toy at step 20/60" in err
    assert (tmp_path / "c.safetensors.damaged").is_file()
    assert_equal_to_uninterrupted(model, hist)
    assert not ckpt.exists() and not previous_path(ckpt).exists()


def test_both_damaged_starts_from_scratch(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "c.safetensors"
    crash_leaving_two_checkpoints(ckpt)
    _corrupt(ckpt)
    _truncate(previous_path(ckpt))
    model, hist = run(ckpt)
    assert capsys.readouterr().err.count("is damaged") == 2
    assert_equal_to_uninterrupted(model, hist)


def test_checkpoint_that_does_not_fit_leaves_the_fresh_state_untouched(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(Crash):
        run(ckpt, crash_at=25, width=6)  # same fingerprint, other shapes
    model, hist = run(ckpt)  # width 8: the checkpoint is moved aside, training starts afresh
    assert (tmp_path / "c.safetensors.damaged").is_file()
    assert_equal_to_uninterrupted(model, hist)


def test_diverged_script_is_one_line(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import torch
        from shared.cli import run
        from shared.training import train_loop

        def main():
            p = torch.nn.Parameter(torch.ones(2))
            train_loop(lambda i: {"loss": float("nan") if i == 3 else 1.0}, 10, {},
                       None, "fp", log_every=1, desc="lm")
        run(main)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "it/s" not in ln
             and not ln.startswith("lm:")]
    assert lines == ["error: lm diverged: loss = nan at step 3; no checkpoint was written"]


def test_sigterm_stops_with_one_line_and_a_rerun_resumes(tmp_path: Path) -> None:
    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "replications.toy_models.scripts.tms_train", "--profile",
                "smoke", "--threads", "1", "--checkpoint-dir", str(tmp_path / "ck"),
                "--out", str(out / "w.safetensors"), "--log", str(out / "log.json")]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd(tmp_path / "a"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Wait until training runs (its first checkpoint exists), then ask it to stop.
    while time.monotonic() < deadline and proc.poll() is None:
        if any((tmp_path / "ck").glob("*.safetensors")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith(("stopped:", "error:"))] == \
        [ln for ln in err.splitlines() if ln.startswith("stopped:")] and "stopped:" in err
    assert not (tmp_path / "a" / "w.safetensors").exists()
    res = subprocess.run(cmd(tmp_path / "a"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "resuming" in res.stderr
    assert (tmp_path / "a" / "w.safetensors").exists()


# --- Bad input files: one line naming the file and what is wrong, before any compute. ---


def _one_line_error(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_truncated_safetensors_input_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_tensors(path, {"w": torch.ones(100, 100)})
    _truncate(path)
    line = _one_line_error(f"""
        from shared.cli import run
        from shared.io import load_tensors
        run(lambda: load_tensors({str(path)!r}))
    """)
    assert line.startswith(f"error: {path}: not a readable safetensors file")


def test_sae_lens_cfg_that_disagrees_with_its_weights_is_one_line(tmp_path: Path) -> None:
    from shared.io import read_json, write_json
    from shared.sae import SAE
    from shared.sae_io import CFG_FILENAME, SAELensInfo, save_sae_lens

    sae_dir = tmp_path / "sae"
    info = SAELensInfo(model_name="m", hook_name="blocks.0.hook_resid_pre", context_size=16,
                       prepend_bos=True)
    save_sae_lens(sae_dir, SAE(8, 32), 0, info, None)
    cfg = read_json(sae_dir / CFG_FILENAME)
    write_json(sae_dir / CFG_FILENAME, {**cfg, "d_sae": 64})
    line = _one_line_error(f"""
        from shared.cli import run
        from shared.sae_io import load_sae_lens
        run(lambda: load_sae_lens({str(sae_dir)!r}))
    """)
    assert line == (f"error: {sae_dir}: sae_weights.safetensors has W_enc of shape (8, 32), but "
                    "cfg.json (d_in 8, d_sae 64) needs (8, 64)")
    (sae_dir / CFG_FILENAME).write_text("{not json")
    line = _one_line_error(f"""
        from shared.cli import run
        from shared.sae_io import load_sae_lens
        run(lambda: load_sae_lens({str(sae_dir)!r}))
    """)
    assert line.startswith(f"error: {sae_dir / CFG_FILENAME}: not valid JSON (line 1")


def test_non_utf8_athlete_table_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "athletes.csv"
    path.write_bytes("first,last,sport\nJos\xe9,Reyes,baseball\n".encode("latin-1"))
    line = _one_line_error(f"""
        from shared.cli import run
        from replications.fact_finding.paper_data import read_athletes
        run(lambda: read_athletes({str(path)!r}))
    """)
    assert line == f"error: {path}: not UTF-8 text (byte 20); save it as UTF-8"
