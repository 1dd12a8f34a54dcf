"""A local English-prose + Python-code corpus, assembled deterministically from Debian packages.

gelu-1l was trained on about 80% web text (C4) and 20% Python code. Without the Hugging Face hub
the smoke and default profiles use a stand-in with the same mixture, read from packages any
Debian machine can install (`env/apt-packages.txt`; `env/bootstrap.sh` installs them):

- prose: the King James Bible (`bible-kjv-text`, read with its `bible` program), the fortune
  cookie collections (`fortunes`: quotations, literature, jokes), the Python 3.11 documentation's
  reStructuredText sources (`python3.11-doc`), the Debian Reference (`debian-reference-en`) and
  the Linux man-pages overview pages (`manpages`, troff stripped to text);
- code: Debian's CPython 3.11 standard library sources (`libpython3.11-stdlib`/`-minimal`).

Long texts are split into documents at blank lines (chapters of the Bible, groups of fortunes,
paragraph groups of the manuals, files or file parts of code), the documents are sub-sampled
to the byte budget and the prose/code ratio with a fixed seed, shuffled, and split into train
and validation by a hash of each document's name (so adding documents never moves others
between splits). Write-ups add their own documents (fact sentences, steering vocabulary) through
`extra_docs`; those go to the training split only, because they are there to be learnt.

Output: `train.txt` and `val.txt` (UTF-8, each document followed by a line holding only
`DOC_SEPARATOR`) and `manifest.json` (sources, package versions, bytes, sha256 of the outputs).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import random
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Sequence

from shared.config import check, to_dict
from shared.io import write_json

# The tokenizer's end-of-text token; it never occurs inside a document (assembly removes it).
DOC_SEPARATOR = "<|endoftext|>"
_SEP_LINE = f"\n{DOC_SEPARATOR}\n"

Kind = Literal["prose", "code"]


class CorpusSourceError(RuntimeError):
    """A corpus source is not installed; the message is one line saying how to install it."""


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
class Source:
    """Where a part of the corpus comes from: a reader and the Debian packages it needs."""

    kind: Kind
    packages: tuple[str, ...]  # Debian packages it reads (recorded with their versions)
    read: Callable[[int], list[Document]]  # max_doc_bytes -> documents
    description: str


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """What goes into the corpus and how much of it."""

    sources: tuple[str, ...]  # names in the source registry (`SOURCES`)
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


def _documents(source: str, name: str, text: str, max_bytes: int) -> list[Document]:
    chunks = split_paragraphs(_clean(text), max_bytes)
    if len(chunks) == 1:
        return [Document(source, name, chunks[0])]
    return [Document(source, f"{name}#{i}", c) for i, c in enumerate(chunks)]


def _read_utf8(path: Path) -> str | None:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a few test-data files are Latin-1 on purpose; leave them out


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, or None when it is not installed."""
    if shutil.which("dpkg-query") is None:
        return None
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
        capture_output=True, text=True,
    )
    status, _, version = out.stdout.partition(" ")
    return version if out.returncode == 0 and status == "installed" else None


def _require(path: Path, source: str, packages: Sequence[str]) -> Path:
    if not path.exists():
        raise CorpusSourceError(
            f"corpus source '{source}' needs {path} from Debian package(s) {' '.join(packages)}: "
            f"run `sudo bash env/bootstrap.sh` or `sudo apt-get install -y {' '.join(packages)}`"
        )
    return path


# ---------------------------------------------------------------------------------------------
# Sources. Each reader takes the config's max_doc_bytes and returns the source's documents in
# a fixed order (sorted paths, canonical book order).

_KJV_BOOKS_RANGE = "Genesis 1:1-Revelation 22:21"


def read_kjv(max_bytes: int) -> list[Document]:
    """The King James Bible, one document per chapter ('Genesis 1', then numbered verses)."""
    packages = ("bible-kjv", "bible-kjv-text")
    _require(Path("/usr/lib/bible.data"), "kjv", packages)
    exe = shutil.which("bible") or "/usr/bin/bible"
    _require(Path(exe), "kjv", packages)
    # -l with a huge width: one verse per line instead of wrapping at the terminal's width.
    out = subprocess.run(
        [exe, "-l1000000", _KJV_BOOKS_RANGE], capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    ).stdout
    docs: list[Document] = []
    title: str | None = None
    verses: list[str] = []
    for line in out.split("\n"):
        if re.fullmatch(r"[1-3]?\s?[A-Z][A-Za-z ]+ \d+", line.strip()) and not line.startswith(" "):
            if title is not None:
                docs += _documents("kjv", title, title + "\n\n" + "\n".join(verses), max_bytes)
            title, verses = line.strip(), []
        elif line.strip():
            verses.append(line.strip())
    if title is not None:
        docs += _documents("kjv", title, title + "\n\n" + "\n".join(verses), max_bytes)
    return docs


_FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Pictures, not prose.
_FORTUNES_SKIP = {"ascii-art"}


def read_fortunes(max_bytes: int) -> list[Document]:
    """Fortune-cookie files: consecutive cookies grouped into documents of up to max_bytes."""
    _require(_FORTUNES_DIR / "literature", "fortunes", ("fortunes",))
    docs: list[Document] = []
    for path in sorted(_FORTUNES_DIR.iterdir()):
        if path.is_symlink() or path.suffix or path.name in _FORTUNES_SKIP:
            continue  # .dat indexes, .u8 links
        text = _read_utf8(path)
        if text is None:
            continue
        cookies = [_clean(c) for c in re.split(r"\n%\n", text)]
        docs += _documents("fortunes", f"fortunes/{path.name}",
                           "\n\n".join(c for c in cookies if c), max_bytes)
    return docs


_PYDOC_DIR = Path("/usr/share/doc/python3.11/html/_sources")


def _strip_rst_noise(text: str) -> str:
    """Drop index entries and link targets: markup with no prose in it."""
    out: list[str] = []
    skipping = False
    for line in text.split("\n"):
        if line.startswith(".. index::") or re.match(r"\.\. _[^:]*:\s*$", line):
            skipping = line.startswith(".. index::")
            continue
        if skipping and (line.startswith((" ", "\t")) and line.strip()):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out)


def read_python_docs(max_bytes: int) -> list[Document]:
    """The Python 3.11 documentation's reStructuredText sources (prose with examples)."""
    _require(_PYDOC_DIR / "tutorial" / "index.rst.txt", "python_docs", ("python3.11-doc",))
    docs: list[Document] = []
    for path in sorted(_PYDOC_DIR.rglob("*.rst.txt")):
        text = _read_utf8(path)
        if text is not None:
            name = "pydoc/" + str(path.relative_to(_PYDOC_DIR))
            docs += _documents("python_docs", name, _strip_rst_noise(text), max_bytes)
    return docs


_DEBREF = Path("/usr/share/debian-reference/debian-reference.en.txt.gz")


def read_debian_reference(max_bytes: int) -> list[Document]:
    """The Debian Reference manual (plain-text rendering), split into paragraph groups."""
    text = _read_utf8(_require(_DEBREF, "debian_reference", ("debian-reference-en",)))
    return _documents("debian_reference", "debian-reference", text or "", max_bytes)


_MAN_DIR = Path("/usr/share/man")


def _package_files(package: str) -> list[Path]:
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    return sorted(Path(p) for p in out.stdout.split("\n") if p) if out.returncode == 0 else []


_TROFF_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[+-]?\d"), ""),  # size changes
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),  # strings (mostly quote marks)
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((aq|cq)"), "'"),
    (re.compile(r"\\\((dq|lq|rq|Lq|Rq)"), '"'),
    (re.compile(r"\\\((bu|ci)"), "*"),
    (re.compile(r"\\\(mu"), "x"),
    (re.compile(r"\\\((ga|oq)"), "`"),
    (re.compile(r"\\\(ti"), "~"),
    (re.compile(r"\\\(ha"), "^"),
    (re.compile(r"\\\(rs"), "\\\\"),
    (re.compile(r"\\\(co"), "(c)"),
    (re.compile(r"\\\(.."), ""),
    (re.compile(r"\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^c:%]"), ""),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r'\\".*$'), ""),
]
_ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}
_BREAKS = {"PP", "P", "LP", "TP", "IP", "HP", "SH", "SS", "sp", "br", "TQ"}


def troff_to_text(source: str) -> str:
    """A small man(7) to plain text converter: enough for readable prose, not typesetting."""
    out: list[str] = []
    para: list[str] = []
    fill, in_table, table_format, fill_outside_table = True, False, False, True

    def unescape(s: str) -> str:
        for pattern, repl in _TROFF_ESCAPES:
            s = pattern.sub(repl, s)
        return s

    def flush() -> None:
        if para:
            out.append(" ".join(para) if fill else "\n".join(para))
            para.clear()

    for raw in source.split("\n"):
        line = raw.rstrip()
        if line.startswith(("'\\\"", ".\\\"", '\\"')) or line in (".", "'"):
            continue
        if in_table:
            if line.startswith(".TE"):
                flush()
                in_table, fill = False, fill_outside_table
            elif table_format:
                table_format = not line.endswith(".")  # the format spec ends with a '.'
            elif not line.startswith("."):
                para.append(unescape(line).replace("\t", "  "))
            continue
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            macro = parts[0] if parts else ""
            arg = parts[1] if len(parts) > 1 else ""
            try:
                args = shlex.split(arg, posix=True) if arg else []
            except ValueError:
                args = arg.split()
            if macro in ("SH", "SS"):
                flush()
                out.append(unescape(" ".join(args)).strip())
            elif macro in _BREAKS:
                flush()
            elif macro in ("nf", "EX"):
                flush()
                fill = False
            elif macro in ("fi", "EE"):
                flush()
                fill = True
            elif macro == "TS":
                flush()
                # Rows stay on their own lines.
                in_table, table_format, fill_outside_table, fill = True, True, fill, False
            elif macro in ("B", "I", "SM", "SB"):
                if args:
                    para.append(unescape(" ".join(args)))
            elif macro in _ALTERNATING:
                para.append(unescape("".join(args)))
            elif macro in ("UR", "MT"):
                para.append(unescape(" ".join(args)))
            # Everything else (TH, RS, RE, in, ft, ne, ...) is layout only.
            continue
        para.append(unescape(line))
    flush()
    return "\n\n".join(p for p in out if p.strip())


def read_man_pages(max_bytes: int) -> list[Document]:
    """The Linux man-pages overview pages (Debian `manpages`), troff turned into text."""
    paths = [p for p in _package_files("manpages")
             if str(p).startswith(str(_MAN_DIR) + "/man") and p.name.endswith(".gz")]
    if not paths:
        _require(_MAN_DIR / "man7" / "signal.7.gz", "man_pages", ("manpages",))
    docs: list[Document] = []
    for path in paths:
        if path.is_symlink() or not path.is_file():
            continue
        text = _read_utf8(path)
        if text is None or text.lstrip().startswith(".so "):
            continue  # aliases of other pages
        name = "man/" + path.name.removesuffix(".gz")
        docs += _documents("man_pages", name, troff_to_text(text), max_bytes)
    return docs


_STDLIB = Path("/usr/lib/python3.11")


def read_python_stdlib(max_bytes: int) -> list[Document]:
    """Debian's CPython 3.11 standard library sources, one document per file (or file part)."""
    _require(_STDLIB / "os.py", "python_stdlib", ("libpython3.11-stdlib",))
    docs: list[Document] = []
    for path in sorted(_STDLIB.rglob("*.py")):
        rel = path.relative_to(_STDLIB)
        # Third-party packages someone installed system-wide are not part of the stdlib.
        if rel.parts[0] in ("dist-packages", "site-packages") or path.is_symlink():
            continue
        text = _read_utf8(path)
        if text is not None and text.strip():
            docs += _documents("python_stdlib", f"stdlib/{rel}", text, max_bytes)
    return docs


SOURCES: dict[str, Source] = {
    "kjv": Source("prose", ("bible-kjv", "bible-kjv-text"), read_kjv,
                  "King James Bible, one document per chapter"),
    "fortunes": Source("prose", ("fortunes", "fortunes-min"), read_fortunes,
                       "fortune cookies (quotations, literature, humour), grouped"),
    "python_docs": Source("prose", ("python3.11-doc",), read_python_docs,
                          "Python 3.11 documentation, reStructuredText sources"),
    "debian_reference": Source("prose", ("debian-reference-en",), read_debian_reference,
                               "Debian Reference manual, plain text"),
    "man_pages": Source("prose", ("manpages",), read_man_pages,
                        "Linux man-pages overview pages, troff stripped to text"),
    "python_stdlib": Source("code", ("libpython3.11-stdlib", "libpython3.11-minimal"),
                            read_python_stdlib, "CPython 3.11 standard library (.py files)"),
}


def apt_packages(names: Iterable[str] | None = None) -> list[str]:
    """The Debian packages the named sources (all when None) need, sorted."""
    picked = SOURCES if names is None else {n: SOURCES[n] for n in names}
    return sorted({p for src in picked.values() for p in src.packages})


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

    `registry` defaults to `SOURCES` (tests pass synthetic sources). `extra_docs` are
    write-up-specific documents: always kept, training split only.
    """
    registry = SOURCES if registry is None else registry
    unknown = [s for s in cfg.sources if s not in registry]
    if unknown:
        raise ValueError(f"unknown corpus source '{unknown[0]}' (known: {', '.join(registry)})")
    by_kind: dict[str, list[Document]] = {"prose": [], "code": []}
    info: dict[str, dict] = {}
    for name in cfg.sources:
        src = registry[name]
        kind = src.kind
        docs = src.read(cfg.max_doc_bytes)
        if not docs:
            raise CorpusSourceError(f"corpus source '{name}' produced no documents")
        by_kind[kind] += docs
        info[name] = {
            "kind": kind, "description": src.description,
            "packages": {p: package_version(p) for p in src.packages},
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
    cfg: CorpusConfig, out_dir: Path, extra_docs: Sequence[Document] = ()
) -> dict:
    """Assemble from the installed Debian sources and write; returns the manifest."""
    return write_corpus(assemble(cfg, extra_docs), out_dir)
