"""The local English-prose + Python-code corpus of the stand-in language models.

gelu-1l was trained on about 80% web text (C4) and 20% Python code. Without the Hugging Face hub
the smoke and default profiles use a stand-in with the same mixture, assembled deterministically
from inputs pinned by content (`shared.corpus_sources`: the King James Bible, Shakespeare, the
READMEs and Python sources of packages in `env/requirements.lock`), never from files of the
system's package manager. `env/corpus.lock` records a digest of every input and of the outputs;
`shared.corpus_lock` checks both.

Long texts are split into documents at blank lines (chapters of the Bible, scenes of a play,
files or file parts of code), the documents are sub-sampled to the byte budget and the
prose/code ratio with a fixed seed, shuffled, and split into train and validation by a hash of
each document's name (so adding documents never moves others between splits). Write-ups add
their own documents (fact sentences, steering vocabulary) through `extra_docs`; those go to the
training split only, because they are there to be learnt.

Output: `train.txt` and `val.txt` (UTF-8, each document followed by a line holding only
`DOC_SEPARATOR`) and `manifest.json` (inputs and their digests, bytes, sha256 of the outputs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from shared.config import check, to_dict
from shared.io import BadInput, write_json

if TYPE_CHECKING:
    from shared.corpus_sources import Source

# The tokenizer's end-of-text token; it never occurs inside a document (assembly removes it).
DOC_SEPARATOR = "<|endoftext|>"
_SEP_LINE = f"\n{DOC_SEPARATOR}\n"


class CorpusSourceError(BadInput):
    """A corpus input is missing or is not the pinned one; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Document:
    """One training document: `name` is unique and stable (it decides the split)."""

    source: str
    name: str
    text: str

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """What goes into the corpus and how much of it."""

    sources: tuple[str, ...]  # names in shared.corpus_sources.SOURCES
    code_fraction: float  # share of the (non-extra) bytes that is code
    max_bytes: int  # upper bound on prose + code bytes; less when the sources hold less
    max_doc_bytes: int  # longer texts are split at blank lines into documents of at most this
    val_fraction: float  # share of documents (by name hash) held out for validation
    seed: int

    def __post_init__(self) -> None:
        check(len(self.sources) > 0, "corpus.sources needs at least one source")
        check(len(set(self.sources)) == len(self.sources), "corpus.sources has duplicates")
        check(0.0 <= self.code_fraction < 1.0, "corpus.code_fraction must be in [0, 1)")
        check(self.max_bytes > 0, "corpus.max_bytes must be positive")
        check(self.max_doc_bytes >= 256, "corpus.max_doc_bytes must be at least 256")
        check(0.0 < self.val_fraction < 0.5, "corpus.val_fraction must be in (0, 0.5)")
        check(self.seed >= 0, "corpus.seed must be non-negative")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Assembled documents and the manifest describing them (hashes are added on writing)."""

    train: tuple[Document, ...]
    val: tuple[Document, ...]
    manifest: dict


# ---------------------------------------------------------------------------------------------
# Helpers


def split_paragraphs(text: str, max_bytes: int) -> list[str]:
    """Split `text` at blank lines into chunks of at most `max_bytes`, in order.

    Within a chunk the text is exactly the original (blank lines included); a paragraph longer
    than `max_bytes` is cut at line ends, and a longer line at the byte limit.
    """
    pieces = re.split(r"(\n[ \t]*\n)", text)  # paragraphs at even indexes, separators between
    chunks: list[str] = []
    current, size = "", 0
    for i in range(0, len(pieces), 2):
        sep = pieces[i - 1] if i > 0 else ""
        for part in _fit(pieces[i], max_bytes):
            joined = (sep if current else "") + part
            n = len(joined.encode("utf-8"))
            if current and size + n > max_bytes:
                chunks.append(current)
                current, size = "", 0
                joined, n = part, len(part.encode("utf-8"))
            current += joined
            size += n
            sep = "\n"  # the parts of a cut paragraph were separated by a line end
    if current:
        chunks.append(current)
    return [c for c in chunks if c.strip()]


def _fit(para: str, max_bytes: int) -> Iterable[str]:
    """`para` itself, or line groups (or byte slices of one line) of at most max_bytes."""
    if len(para.encode("utf-8")) <= max_bytes:
        yield para
        return
    group: list[str] = []
    size = 0
    for line in para.split("\n"):
        while len(line.encode("utf-8")) > max_bytes:
            # A single huge line (data tables, minified text): cut on characters.
            head = line.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
            if group:
                yield "\n".join(group)
                group, size = [], 0
            yield head
            line = line[len(head):]
        n = len(line.encode("utf-8")) + 1
        if size + n > max_bytes and group:
            yield "\n".join(group)
            group, size = [], 0
        group.append(line)
        size += n
    if group:
        yield "\n".join(group)


def _clean(text: str) -> str:
    """Normalise line ends and trailing space; remove the separator so documents stay whole."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(DOC_SEPARATOR, "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text.strip("\n")


def documents(source: str, name: str, text: str, max_bytes: int) -> list[Document]:
    """`text` cleaned and cut at blank lines into documents `name` (`name#i` when cut)."""
    chunks = split_paragraphs(_clean(text), max_bytes)
    if len(chunks) == 1:
        return [Document(source, name, chunks[0])]
    return [Document(source, f"{name}#{i}", c) for i, c in enumerate(chunks)]


# ---------------------------------------------------------------------------------------------
# Assembly


def _val_score(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _take(docs: list[Document], budget: int, rng: random.Random) -> list[Document]:
    """A seeded random subset of `docs` of at most `budget` bytes (all of them if they fit)."""
    order = list(docs)
    rng.shuffle(order)
    taken, size = [], 0
    for doc in order:
        if size + doc.n_bytes > budget:
            continue  # a smaller document later may still fit
        taken.append(doc)
        size += doc.n_bytes
    return taken


def assemble(
    cfg: CorpusConfig,
    extra_docs: Sequence[Document] = (),
    registry: Mapping[str, Source] | None = None,
) -> Corpus:
    """Read the configured sources, sub-sample to the budget and ratio, shuffle and split.

    `registry` defaults to `shared.corpus_sources.SOURCES` (tests pass synthetic sources).
    `extra_docs` are write-up-specific documents: always kept, training split only. The manifest
    records every input's digest (`inputs`) and a `lock_key` naming this build in
    env/corpus.lock: a digest of the config and the extra documents.
    """
    if registry is None:
        from shared.corpus_sources import SOURCES  # it imports this module

        registry = SOURCES
    unknown = [s for s in cfg.sources if s not in registry]
    if unknown:
        raise ValueError(f"unknown corpus source '{unknown[0]}' (known: {', '.join(registry)})")
    by_kind: dict[str, list[Document]] = {"prose": [], "code": []}
    info: dict[str, dict] = {}
    inputs: dict[str, dict[str, str]] = {}
    for name in cfg.sources:
        src = registry[name]
        kind = src.kind
        docs, pinned = src.read(cfg.max_doc_bytes)
        if not docs:
            raise CorpusSourceError(f"corpus source '{name}' produced no documents")
        by_kind[kind] += docs
        inputs[name] = {i.id: i.sha256 for i in pinned}
        info[name] = {
            "kind": kind, "description": src.description,
            "available_docs": len(docs), "available_bytes": sum(d.n_bytes for d in docs),
        }
    check(cfg.code_fraction == 0 or bool(by_kind["code"]),
          "corpus.code_fraction > 0 but no code source is listed")
    check(bool(by_kind["prose"]) or (cfg.code_fraction == 0 and bool(by_kind["code"])),
          "corpus.sources lists no prose source")

    # Byte budgets that keep the prose/code ratio even when a kind runs short.
    prose_avail = sum(d.n_bytes for d in by_kind["prose"])
    code_avail = sum(d.n_bytes for d in by_kind["code"])
    prose_budget = min(int(cfg.max_bytes * (1 - cfg.code_fraction)), prose_avail)
    if cfg.code_fraction > 0:
        ratio = cfg.code_fraction / (1 - cfg.code_fraction)
        if prose_budget * ratio > code_avail:
            prose_budget = int(code_avail / ratio)
        code_budget = int(prose_budget * ratio)
    else:
        code_budget = 0

    rng = random.Random(cfg.seed)
    chosen = _take(by_kind["prose"], prose_budget, rng) + _take(by_kind["code"], code_budget, rng)
    chosen.sort(key=lambda d: (d.source, d.name))  # independent of the sampling order
    extra = [Document(d.source, d.name, _clean(d.text)) for d in extra_docs]
    empty = [d.name for d in extra if not d.text.strip()]
    if empty:
        raise ValueError(f"extra document '{empty[0]}' is empty")
    names = [d.name for d in chosen] + [d.name for d in extra]
    if len(set(names)) != len(names):
        raise ValueError("document names must be unique (an extra document repeats a name)")

    train = [d for d in chosen if _val_score(d.name, cfg.seed) >= cfg.val_fraction]
    val = [d for d in chosen if _val_score(d.name, cfg.seed) < cfg.val_fraction]
    train += extra
    # Separate generators: the validation order must not depend on how many extras there are.
    random.Random(f"train:{cfg.seed}").shuffle(train)
    random.Random(f"val:{cfg.seed}").shuffle(val)

    for name in info:
        for split, docs in (("train", train), ("val", val)):
            picked = [d for d in docs if d.source == name]
            info[name][f"{split}_docs"] = len(picked)
            info[name][f"{split}_bytes"] = sum(d.n_bytes for d in picked)
    extra_sources = sorted({d.source for d in extra})
    manifest = {
        "config": to_dict(cfg),
        "lock_key": lock_key(cfg, extra),
        "inputs": inputs,
        "sources": info,
        "extra": {s: {"docs": sum(d.source == s for d in extra),
                      "bytes": sum(d.n_bytes for d in extra if d.source == s)}
                  for s in extra_sources},
        "bytes": {
            kind: sum(d.n_bytes for d in train + val if _kind(d, registry) == kind)
            for kind in ("prose", "code", "extra")
        },
        "docs": {"train": len(train), "val": len(val)},
        "separator": DOC_SEPARATOR,
    }
    return Corpus(tuple(train), tuple(val), manifest)


def lock_key(cfg: CorpusConfig, extra: Sequence[Document]) -> str:
    """What decides the output given the pinned inputs: the config and the extra documents."""
    digest = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode())
    for d in extra:
        digest.update(f"\0{d.source}\0{d.name}\0{d.text}".encode())
    return digest.hexdigest()[:16]


def _kind(doc: Document, registry: Mapping[str, Source]) -> str:
    """'prose' or 'code' for documents of a registered source, 'extra' otherwise."""
    entry = registry.get(doc.source)
    return entry.kind if entry is not None else "extra"


def write_corpus(corpus: Corpus, out_dir: Path) -> dict:
    """Write train.txt, val.txt and manifest.json (with sizes and sha256) into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = dict(corpus.manifest)
    files = {}
    for split, docs in (("train", corpus.train), ("val", corpus.val)):
        blob = "".join(d.text + _SEP_LINE for d in docs).encode("utf-8")
        path = out_dir / f"{split}.txt"
        tmp = path.with_suffix(".txt.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        files[f"{split}.txt"] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    manifest["files"] = files
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def read_documents(path: Path) -> list[str]:
    """The documents of a `train.txt`/`val.txt` written by `write_corpus`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing corpus file (run the build_corpus rule first)")
    text = path.read_text(encoding="utf-8")
    return [d for d in text.split(_SEP_LINE) if d]


def build_corpus(
    cfg: CorpusConfig, out_dir: Path, extra_docs: Sequence[Document] = (), label: str = ""
) -> dict:
    """Assemble, check every input against env/corpus.lock, write, and check the outputs
    (when this config and these extra documents are locked); returns the manifest."""
    from shared import corpus_lock

    corpus = assemble(cfg, extra_docs)
    corpus_lock.check_inputs(corpus.manifest["inputs"])
    manifest = write_corpus(corpus, out_dir)
    manifest["lock"] = corpus_lock.check_outputs(
        manifest["lock_key"], {f: v["sha256"] for f, v in manifest["files"].items()}, label)
    write_json(Path(out_dir) / "manifest.json", manifest)
    return manifest
