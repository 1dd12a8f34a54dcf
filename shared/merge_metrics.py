"""Merge per-step metric files into a write-up's metrics.json under named sections.

    python -m shared.merge_metrics --out metrics.json tms=a.json sae_tms=b.json tracr.reverse=c.json:equality

`name=path` puts the file's content under `name` (dots nest); `name=path:key` takes only the
value at `key` (dots nest) of that file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.cli import run
from shared.io import read_json, write_json


def _get(data: Any, dotted: str, where: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            raise KeyError(f"{where}: no key '{dotted}'")
        data = data[part]
    return data


def merge(items: list[str]) -> dict[str, Any]:
    """Build the merged dict from `name=path[:key]` items."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, spec = item.partition("=")
        if not name or not spec:
            raise ValueError(f"expected name=path[:key], got {item!r}")
        path, _, key = spec.partition(":")
        data = read_json(Path(path))
        if key:
            data = _get(data, key, path)
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = data
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Merge metric files into one JSON.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("items", nargs="+", help="name=path[:key]")
    args = ap.parse_args(argv)
    write_json(args.out, merge(args.items))
    print(f"merged {len(args.items)} metric files into {args.out}")


if __name__ == "__main__":
    run(main)
