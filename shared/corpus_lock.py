"""env/corpus.lock: the digests every corpus input and every locked build must have.

The corpus rule stops with one line naming the first input whose digest is not the locked one
(a different package version, an edited installed file, another archive) before it writes
anything, and compares its outputs (train.txt, val.txt) and the tokenizer rule its token rows
with the lock when the build's config and extra documents are locked. A build that is not locked
(a changed config) prints one line and goes on.

After an intended change (new pins in env/requirements.lock, a changed corpus config):
    python -m shared.corpus_lock results/smoke results/default
rewrites the lock from the manifests of those builds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

from shared.cli import run
from shared.corpus import CorpusSourceError
from shared.io import read_json, write_json

LOCK_PATH = Path(__file__).resolve().parent.parent / "env" / "corpus.lock"
RELOCK = "python -m shared.corpus_lock results/smoke results/default"


def read_lock(path: Path = LOCK_PATH) -> dict[str, Any]:
    if not path.is_file():
        raise CorpusSourceError(f"{path}: missing corpus lock (restore it from git)")
    return read_json(path)


def _short(sha: str) -> str:
    return sha[:12] + "…"


def check_inputs(inputs: Mapping[str, Mapping[str, str]], path: Path = LOCK_PATH) -> None:
    """Raise CorpusSourceError naming the first input (source order, then input order) whose
    digest differs from the lock, or that the lock does not list, or that is missing."""
    locked = read_lock(path)["inputs"]
    for source, pins in inputs.items():
        want = locked.get(source)
        if want is None:
            raise CorpusSourceError(f"corpus source '{source}' is not in {path.name}; "
                                    f"relock: {RELOCK}")
        for input_id, sha in pins.items():
            if input_id not in want:
                raise CorpusSourceError(
                    f"corpus input {input_id} ({source}) is not in {path.name} (locked: "
                    f"{', '.join(sorted(want))[:120]}); install the pinned environment "
                    "(`bash env/bootstrap.sh`) or relock")
            if want[input_id] != sha:
                raise CorpusSourceError(
                    f"corpus input {input_id} ({source}) differs from {path.name}: sha256 "
                    f"{_short(sha)} is not the locked {_short(want[input_id])}")
        missing = sorted(set(want) - set(pins))
        if missing:
            raise CorpusSourceError(f"corpus input {missing[0]} ({source}) of {path.name} "
                                    "was not read (a different version is installed?)")


def check_outputs(key: str, files: Mapping[str, str], label: str, path: Path = LOCK_PATH) -> str:
    """Compare a build's output digests with the lock's entry `key`: 'locked' when they match,
    'unlocked' (one line printed) when the lock has no such build; raise when they differ."""
    entry = read_lock(path).get("outputs", {}).get(key)
    if entry is None:
        print(f"corpus lock: {label or key} is not locked (its config or extra documents "
              "differ from every locked build); outputs not checked", file=sys.stderr)
        return "unlocked"
    for name, sha in files.items():
        want = entry["files"].get(name)
        if want is not None and want != sha:
            raise CorpusSourceError(
                f"{name} of {label or key} differs from {path.name}: sha256 {_short(sha)} is "
                f"not the locked {_short(want)} (assembly or tokenizer code changed, or a "
                f"nondeterminism); if intended, relock: {RELOCK}")
    return "locked"


def tokens_key(corpus_key: str, tokenizer_config_hash: str) -> str:
    return f"{corpus_key}+tok{tokenizer_config_hash}"


def current_inputs() -> dict[str, dict[str, str]]:
    """Every input of every registered source, as this environment has it."""
    from shared.corpus_sources import SOURCES

    return {name: {i.id: i.sha256 for i in src.read(1 << 20)[1]}
            for name, src in sorted(SOURCES.items())}


def build_lock(results_dirs: list[Path]) -> dict[str, Any]:
    """A lock of every input as installed now, and of the builds whose corpus and tokenizer
    manifests are under `results_dirs` (`<dir>/<owner>/{corpus,tokenizer}/manifest.json`)."""
    inputs = current_inputs()
    outputs: dict[str, Any] = {}
    for results in results_dirs:
        manifests = sorted(Path(results).glob("*/corpus/manifest.json"))  # one per zoo owner
        if not manifests:
            raise CorpusSourceError(f"{results}: no */corpus/manifest.json to lock")
        for corpus_manifest in manifests:
            m = read_json(corpus_manifest)
            label = f"{Path(results).name}/{corpus_manifest.parent.parent.name}"
            for source, pins in m["inputs"].items():
                if pins != inputs[source]:
                    raise CorpusSourceError(f"{corpus_manifest}: its '{source}' inputs are not "
                                            "the installed ones; rebuild it first")
            outputs[m["lock_key"]] = {
                "build": label,
                "files": {f: v["sha256"] for f, v in m["files"].items()},
            }
            tok = corpus_manifest.parent.parent / "tokenizer" / "manifest.json"
            if tok.is_file():
                t = read_json(tok)
                outputs[tokens_key(m["lock_key"], t["config_hash"])] = {
                    "build": label, "files": {"tokens.safetensors": t["tokens_sha256"]},
                }
    return {
        "about": "Digests of every corpus input and locked build; written by "
                 "`python -m shared.corpus_lock`; checked by the zoo's corpus and tokenizer "
                 "rules.",
        "inputs": {s: dict(sorted(p.items())) for s, p in sorted(inputs.items())},
        "outputs": dict(sorted(outputs.items())),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Rewrite env/corpus.lock from built results.")
    ap.add_argument("results", type=Path, nargs="*", help="results/<profile> folders")
    ap.add_argument("--lock", type=Path, default=LOCK_PATH)
    args = ap.parse_args(argv)
    lock = build_lock(args.results)
    write_json(args.lock, lock)
    print(f"corpus lock: {sum(len(p) for p in lock['inputs'].values())} inputs, "
          f"{len(lock['outputs'])} builds -> {args.lock}")


if __name__ == "__main__":
    run(main)
