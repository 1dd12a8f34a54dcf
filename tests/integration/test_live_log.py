"""A checkpointed training run logs live with DVCLive (shared.live): every history row with its
throughput while it runs, a clean log after a crash and resume, nothing for an unsaved run."""

import csv
import json
from pathlib import Path

import pytest
import torch

from shared.live import live_dir
from shared.training import train_loop

pytestmark = pytest.mark.integration

X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
Y = X @ torch.randn(8, 1, generator=torch.Generator().manual_seed(1))


class Crash(RuntimeError):
    pass


def run(ckpt: Path | None, crash_at: int | None = None) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(i: int) -> dict[str, float]:
        if i == crash_at:
            raise Crash(f"crash at {i}")
        loss = (model(X) - Y).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    return train_loop(step, 60, {"model": model, "opt": opt}, ckpt, "fp", checkpoint_every=20,
                      log_every=10, desc="toy", per_step=("tokens", 64))


def tsv(folder: Path, metric: str) -> list[tuple[int, float]]:
    with (folder / "plots" / "metrics" / f"{metric}.tsv").open() as f:
        return [(int(r["step"]), float(r[metric.rsplit("/", 1)[-1]]))
                for r in csv.DictReader(f, delimiter="\t")]


def test_a_checkpointed_run_logs_every_row_and_its_throughput(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "toy.safetensors"
    ckpt.parent.mkdir()
    history = run(ckpt)
    folder = live_dir(ckpt)
    assert folder == tmp_path / "checkpoints" / "live" / "toy"
    assert tsv(folder, "loss") == [(int(r["step"]), r["loss"]) for r in history]
    steps = tsv(folder, "throughput/steps_per_s")
    tokens = tsv(folder, "throughput/tokens_per_s")
    assert [s for s, _ in steps] == [int(r["step"]) for r in history]
    assert all(v > 0 for _, v in steps)
    assert [t for _, t in tokens] == pytest.approx([64 * s for _, s in steps])
    latest = json.loads((folder / "metrics.json").read_text())
    assert latest["step"] == 59 and latest["loss"] == history[-1]["loss"]
    assert not ckpt.exists()  # the checkpoint goes once the run completes; the log stays


def test_a_resumed_run_rewrites_its_log_without_repeated_steps(tmp_path: Path) -> None:
    ckpt = tmp_path / "toy.safetensors"
    with pytest.raises(Crash):
        run(ckpt, crash_at=45)  # rows 0..40 logged; the checkpoint holds step 40
    assert [s for s, _ in tsv(live_dir(ckpt), "loss")] == [0, 10, 20, 30, 40]
    history = run(ckpt)
    assert history == run(None)
    assert tsv(live_dir(ckpt), "loss") == [(int(r["step"]), r["loss"]) for r in history]
    # Throughput only for the steps this process ran (the restored rows carry none).
    assert [s for s, _ in tsv(live_dir(ckpt), "throughput/steps_per_s")] == [40, 50, 59]


def test_a_run_without_a_checkpoint_logs_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run(None)
    assert list(tmp_path.iterdir()) == []
