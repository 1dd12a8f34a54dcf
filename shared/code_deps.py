"""The project's own modules a script imports, directly or through others (statically, from
the source's import statements), so a Snakemake rule can list them as inputs: editing one
reruns exactly the rules whose scripts import it. Third-party modules are pinned by
env/requirements.lock and are not listed."""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "replications")


def module_file(module: str) -> Path | None:
    """The project file of a dotted module name (module or package), or None if not ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


@functools.cache
def _direct(module: str) -> tuple[str, ...]:
    """The project modules `module`'s source imports (its parent packages included)."""
    path = module_file(module)
    if path is None:
        return ()
    found: list[str] = []
    parts = module.split(".")
    found += [".".join(parts[:i]) for i in range(1, len(parts))]
    package = _package_of(module, path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append(base)
            # `from pkg import name` may name a submodule.
            found += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    return tuple(m for m in dict.fromkeys(found) if module_file(m) is not None)


def closure(module: str) -> list[str]:
    """Every project file `module` imports, transitively, itself included, as sorted paths
    relative to the repository root."""
    if module_file(module) is None:
        raise ValueError(f"{module}: not a module of this project ({', '.join(PACKAGES)})")
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_direct(m))
    files = {module_file(m) for m in seen}
    return sorted(str(p.relative_to(ROOT)) for p in files if p is not None)


def digest(module: str) -> str:
    """sha256 over the paths and contents of `closure(module)`: changes with any edit."""
    h = hashlib.sha256()
    for rel in closure(module):
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()
