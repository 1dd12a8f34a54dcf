"""Atomic file writes (safetensors tensors, JSON metrics) and file digests.

Everything is written to a temporary file and renamed, so a killed job never leaves a
half-written output that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file


class BadInput(ValueError):
    """An input file that exists but cannot be read as what it should be (one line)."""


def _atomic_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


# safetensors writes its metadata map in arbitrary key order, so several keys would make the
# file's bytes (and its DVC hash) change from run to run: all metadata goes into one key.
_META_KEY = "replication_metadata"


def save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Save tensors as safetensors, atomically (contiguous CPU copies), byte-stable."""
    path = Path(path)
    tmp = _atomic_path(path)
    packed = {_META_KEY: json.dumps(dict(metadata), sort_keys=True)} if metadata else None
    try:
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata=packed,
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_metadata(path: Path) -> dict[str, str]:
    """The metadata written by `save_tensors` (empty when there is none)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing input (run the rule that makes it first)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        return json.loads(raw[_META_KEY]) if _META_KEY in raw else {}
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise BadInput(f"{path}: not a readable safetensors file ({_first_line(err)})") from err


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file (no pickle involved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing input (run the rule that makes it first)")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # truncated or overwritten files: a one-line error, not a trace
        raise BadInput(f"{path}: not a readable safetensors file ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return _jsonable(v.detach().cpu().tolist())
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else round(f, 10)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically with sorted keys and rounded floats (stable bytes for DVC)."""
    path = Path(path)
    tmp = _atomic_path(path)
    try:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (large files stay out of memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def emit_report(report: Any, markdown: str, path: Path | None) -> None:
    """Print a report's Markdown; with `path`, write the report there as JSON and the Markdown
    beside it (`.md`)."""
    print(markdown)
    if path is not None:
        write_json(path, report)
        Path(path).with_suffix(".md").write_text(markdown)


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing input (run the rule that makes it first)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise BadInput(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: "
                       f"{err.msg})") from err
