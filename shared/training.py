"""Resumable training loops: checkpoints in safetensors, a progress bar, logged history.

A training function supplies `step_fn(step) -> metrics`; the loop owns checkpointing. Steps draw
their randomness from `shared.runtime.step_generator(seed, step)`, so a run killed at any point
and started again ends bit-identical to an uninterrupted run on CPU.

Nothing is lost on failure, and nothing bad is trusted:
- a non-finite logged metric, or a non-finite value in the state when a checkpoint is due or
  the loop ends, raises `TrainingDiverged` naming the step; the last good checkpoint is kept
  and no output is returned (so the rule writes none);
- every checkpoint carries a sha256 of its tensors; on load it must match, every float tensor
  must be finite and every object must accept its state (keys, shapes). A damaged checkpoint
  is moved aside (`<name>.damaged`) with a warning, and training resumes from the previous
  checkpoint (`<name>.prev.safetensors`, kept at each save) or starts from scratch.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import torch
from tqdm.auto import tqdm

from shared.io import load_metadata, load_tensors, save_tensors
from shared.live import open_live


class TrainingDiverged(RuntimeError):
    """A non-finite loss or parameter: the run stops; its last good checkpoint is kept."""


class DamagedCheckpoint(ValueError):
    """A checkpoint that cannot be trusted (unreadable, wrong checksum, non-finite, misfit)."""


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


def previous_path(path: Path) -> Path:
    """Where the checkpoint before the latest one is kept."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _first_bad(state: Mapping[str, Stateful]) -> str | None:
    """The dotted path of the first non-finite value of the state, or None.

    A module's parameters must be finite; its buffers only free of NaN (TransformerLens keeps
    -inf in attention-mask buffers). Every other float tensor (optimizer moments, meters,
    data-source state) must be finite."""

    def bad(t: torch.Tensor, strict: bool) -> bool:
        if not t.is_floating_point():
            return False
        return not bool((torch.isfinite(t) if strict else ~torch.isnan(t)).all())

    def walk(obj: Any, prefix: str) -> str | None:
        if isinstance(obj, torch.Tensor):
            return prefix if bad(obj, True) else None
        items = obj.items() if isinstance(obj, Mapping) else \
            enumerate(obj) if isinstance(obj, (list, tuple)) else ()
        for k, v in items:
            found = walk(v, f"{prefix}.{k}")
            if found:
                return found
        return None

    for name, obj in state.items():
        if isinstance(obj, torch.nn.Module):
            for pname, p in obj.named_parameters():
                if bad(p.detach(), True):
                    return f"{name}.{pname}"
            for bname, b in obj.named_buffers():
                if bad(b, False):
                    return f"{name}.{bname}"
        else:
            found = walk(obj.state_dict(), name)
            if found:
                return found
    return None


def save_checkpoint(
    path: Path,
    state: Mapping[str, Stateful],
    step: int,
    history: list[dict[str, float]],
    fingerprint: str,
) -> None:
    """Write every object's state dict, the step and the history to one safetensors file.

    Refuses (TrainingDiverged) to write a state with a non-finite value; the checkpoint it
    replaces is kept as `previous_path(path)`."""
    path = Path(path)
    bad = _first_bad(state)
    if bad is not None:
        raise TrainingDiverged(f"non-finite values in {bad} at step {step}")
    tensors: dict[str, torch.Tensor] = {}
    structure = {name: _pack(obj.state_dict(), tensors) for name, obj in state.items()}
    meta = {
        "structure": json.dumps(structure),
        "step": str(step),
        "history": json.dumps(history),
        "fingerprint": fingerprint,
        "checksum": _checksum(tensors),
    }
    if path.is_file():
        os.replace(path, previous_path(path))
    save_tensors(path, tensors, meta)


def _cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor on the CPU (no second copy of a model in GPU memory)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, Mapping):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _restore(path: Path, state: Mapping[str, Stateful], fingerprint: str
             ) -> tuple[int, list[dict[str, float]]] | None:
    """Load one checkpoint file into `state`; None if it is for other settings."""
    try:
        meta = load_metadata(path)
        if meta.get("fingerprint") != fingerprint:
            print(f"[checkpoint] {path} is for other settings; not resuming from it",
                  file=sys.stderr)
            return None
        tensors = load_tensors(path)
        structure = json.loads(meta["structure"])
        step, history = int(meta["step"]), json.loads(meta["history"])
    except DamagedCheckpoint:
        raise
    except Exception as err:  # unreadable: truncated file, bad header, missing metadata
        raise DamagedCheckpoint(f"unreadable ({type(err).__name__}: {err})") from err
    if meta.get("checksum") != _checksum(tensors):
        raise DamagedCheckpoint("its checksum does not match its tensors")
    # load_state_dict can fail half-way (a shape mismatch after some tensors were copied), and
    # finiteness is judged on the loaded state: keep the pristine state to put back.
    pristine = {name: _cpu_copy(obj.state_dict()) for name, obj in state.items()}
    try:
        for name, obj in state.items():
            obj.load_state_dict(_unpack(structure[name], tensors))
        bad = _first_bad(state)
        if bad is not None:
            raise DamagedCheckpoint(f"non-finite values in {bad}")
    except Exception as err:
        for name, obj in state.items():
            obj.load_state_dict(pristine[name])
        if isinstance(err, DamagedCheckpoint):
            raise
        raise DamagedCheckpoint(f"does not fit the model ({type(err).__name__}: "
                                f"{str(err).splitlines()[0]})") from err
    return step, history


def load_checkpoint(
    path: Path, state: Mapping[str, Stateful], fingerprint: str
) -> tuple[int, list[dict[str, float]]] | None:
    """Restore `state` from `path` (or, if that is damaged, from the previous checkpoint);
    None when there is none to resume from. Damaged files are moved aside with a warning."""
    path = Path(path)
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            continue
        try:
            restored = _restore(candidate, state, fingerprint)
        except DamagedCheckpoint as err:
            aside = candidate.with_name(candidate.name + ".damaged")
            os.replace(candidate, aside)
            print(f"[checkpoint] warning: {candidate} is damaged: {err}; moved to {aside}",
                  file=sys.stderr)
            continue
        if restored is not None:
            return restored
    return None


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
    per_step: tuple[str, int] | None = None,
) -> list[dict[str, float]]:
    """Run `step_fn(step)` for steps [start, n_steps), resuming from a checkpoint if present.

    `step_fn` may return scalar tensors: they are read (a device sync) only on logged steps.

    Returns the logged history (every `log_every` steps and the last). A checkpoint is written
    every `checkpoint_every` steps and at the step boundary after SIGINT/SIGTERM (then the loop
    raises KeyboardInterrupt); it is removed once the loop completes (the caller saves outputs).
    A hard kill loses at most `checkpoint_every` steps. A non-finite logged metric, or a
    non-finite state at a checkpoint or at the end, raises TrainingDiverged (module docstring).
    A checkpointed run also logs live (shared.live), with its throughput in `per_step` units
    (("tokens", 4096): one step consumes 4096 tokens).
    """
    start, history = 0, list[dict[str, float]]()
    if checkpoint_path is not None:
        restored = load_checkpoint(checkpoint_path, state, fingerprint)
        if restored is not None:
            start, history = restored
            print(f"[checkpoint] resuming {desc} at step {start}/{n_steps}", file=sys.stderr)
    good = start  # the step of the last good checkpoint (0: none)
    live = open_live(checkpoint_path, per_step)
    if live is not None:
        live.start(start, history)

    def diverged(what: str, step: int) -> TrainingDiverged:
        kept = (f"the last good checkpoint (step {good}) is kept at {checkpoint_path}"
                if checkpoint_path is not None and good > 0 else "no checkpoint was written")
        return TrainingDiverged(f"{desc} diverged: {what} at step {step}; {kept}")

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
                    non_finite = [k for k, v in row.items() if not math.isfinite(v)]
                    if non_finite:
                        raise diverged(f"{non_finite[0]} = {row[non_finite[0]]}", step)
                    history.append(row)
                    if live is not None:
                        live.row(step, row)
                    shown = {k: f"{v:.3g}" for k, v in list(row.items())[1:4]}
                    bar.set_postfix(shown, refresh=False)
                bar.update(1)
                done = step + 1
                periodic = done % checkpoint_every == 0 and done < n_steps
                if checkpoint_path is not None and (periodic or stop.requested):
                    try:
                        save_checkpoint(checkpoint_path, state, done, history, fingerprint)
                    except TrainingDiverged as err:
                        raise diverged(str(err).rsplit(" at step", 1)[0], done) from None
                    good = done
                if stop.requested:
                    # Stopped between steps, so the saved state is consistent: nothing is lost.
                    print(f"[checkpoint] saved at step {done}; stopping", file=sys.stderr)
                    raise KeyboardInterrupt(f"{desc} stopped by signal at step {done}")
    finally:
        bar.close()
        if live is not None:
            live.close()
    bad = _first_bad(state)
    if bad is not None:
        raise diverged(f"non-finite values in {bad}", n_steps)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
        previous_path(Path(checkpoint_path)).unlink(missing_ok=True)
    return history
