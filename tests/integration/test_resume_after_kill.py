"""Kill a real training job with SIGKILL mid-run, run it again: it resumes from its checkpoint
and ends with outputs byte-identical to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _cmd(out, ckpt):
    return [sys.executable, "-m", "replications.toy_models.scripts.tms_train", "--profile",
            "smoke", "--threads", "1", "--checkpoint-dir", str(ckpt),
            "--out", str(out / "w.safetensors"), "--log", str(out / "log.json")]


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref, killed, ckpt_ref, ckpt = (tmp_path / d for d in ("ref", "killed", "ck_ref", "ck"))
    subprocess.run(_cmd(ref, ckpt_ref), cwd=ROOT, env=env, check=True, capture_output=True)

    proc = subprocess.Popen(_cmd(killed, ckpt), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.is_dir() and any(ckpt.glob("*.safetensors")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before a checkpoint was seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "w.safetensors").exists()

    res = subprocess.run(_cmd(killed, ckpt), cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stderr
    assert (killed / "w.safetensors").read_bytes() == (ref / "w.safetensors").read_bytes()
    assert (killed / "log.json").read_bytes() == (ref / "log.json").read_bytes()
