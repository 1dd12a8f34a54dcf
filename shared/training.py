"""Resumable training loops: checkpoints in safetensors, a progress bar, logged history.

A training function supplies `step_fn(step) -> metrics`; the loop owns checkpointing. Steps draw
their randomness from `shared.runtime.step_generator(seed, step)`, so a run killed at any point
and started again ends bit-identical to an uninterrupted run on CPU.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import torch
from tqdm.auto import tqdm

from shared.io import load_metadata, load_tensors, save_tensors


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def _pack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Turn a nested state dict into JSON, moving tensors aside into `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__t": key}
    if isinstance(obj, Mapping):
        return {"__d": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple": [_pack(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}")


def _unpack(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__t" in obj:
            return tensors[obj["__t"]]
        if "__d" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["__d"]}
        if "__tuple" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple"])
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    return obj


def save_checkpoint(
    path: Path,
    state: Mapping[str, Stateful],
    step: int,
    history: list[dict[str, float]],
    fingerprint: str,
) -> None:
    """Write every object's state dict, the step and the history to one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    structure = {name: _pack(obj.state_dict(), tensors) for name, obj in state.items()}
    meta = {
        "structure": json.dumps(structure),
        "step": str(step),
        "history": json.dumps(history),
        "fingerprint": fingerprint,
    }
    save_tensors(path, tensors, meta)


def load_checkpoint(
    path: Path, state: Mapping[str, Stateful], fingerprint: str
) -> tuple[int, list[dict[str, float]]] | None:
    """Restore `state` from `path`; None when there is no checkpoint or it is for other settings."""
    path = Path(path)
    if not path.is_file():
        return None
    meta = load_metadata(path)
    if meta.get("fingerprint") != fingerprint:
        print(f"[checkpoint] {path} is for other settings; starting afresh", file=sys.stderr)
        return None
    tensors = load_tensors(path)
    structure = json.loads(meta["structure"])
    for name, obj in state.items():
        obj.load_state_dict(_unpack(structure[name], tensors))
    return int(meta["step"]), json.loads(meta["history"])


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to stop at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    @contextlib.contextmanager
    def installed(self):  # type: ignore[no-untyped-def]
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def train_loop(
    step_fn: Callable[[int], Mapping[str, float | torch.Tensor]],
    n_steps: int,
    state: Mapping[str, Stateful],
    checkpoint_path: Path | None,
    fingerprint: str,
    checkpoint_every: int = 1000,
    log_every: int = 100,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Run `step_fn(step)` for steps [start, n_steps), resuming from a checkpoint if present.

    `step_fn` may return scalar tensors: they are read (a device sync) only on logged steps.

    Returns the logged history (every `log_every` steps and the last). A checkpoint is written
    every `checkpoint_every` steps and at the step boundary after SIGINT/SIGTERM (then the loop
    raises KeyboardInterrupt); it is removed once the loop completes (the caller saves outputs).
    A hard kill loses at most `checkpoint_every` steps.
    """
    start, history = 0, list[dict[str, float]]()
    if checkpoint_path is not None:
        restored = load_checkpoint(checkpoint_path, state, fingerprint)
        if restored is not None:
            start, history = restored
            print(f"[checkpoint] resuming {desc} at step {start}/{n_steps}", file=sys.stderr)
    bar = tqdm(
        total=n_steps, initial=start, desc=desc, mininterval=2.0, file=sys.stderr,
        dynamic_ncols=True, disable=n_steps == 0,
    )
    stop = _StopFlag()
    try:
        with stop.installed():
            for step in range(start, n_steps):
                metrics = step_fn(step)
                if step % log_every == 0 or step == n_steps - 1:
                    row = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
                    history.append(row)
                    shown = {k: f"{v:.3g}" for k, v in list(row.items())[1:4]}
                    bar.set_postfix(shown, refresh=False)
                bar.update(1)
                done = step + 1
                periodic = done % checkpoint_every == 0 and done < n_steps
                if checkpoint_path is not None and (periodic or stop.requested):
                    save_checkpoint(checkpoint_path, state, done, history, fingerprint)
                if stop.requested:
                    # Stopped between steps, so the saved state is consistent: nothing is lost.
                    print(f"[checkpoint] saved at step {done}; stopping", file=sys.stderr)
                    raise KeyboardInterrupt(f"{desc} stopped by signal at step {done}")
    finally:
        bar.close()
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
    return history
