"""Claims files and the scorecard.

Each write-up keeps `claims.yaml`: every quantitative statement of the write-up, its published
value, the metric (a dotted key into the write-up's metrics JSON) that reproduces it, a check with
its tolerance, and the profiles the check applies to. The scorecard evaluates every claim against
the metrics of one profile: pass / fail where the claim applies, n/a (value still shown) where
it does not, and missing where the metric was not produced.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal, Mapping

from shared.config import PROFILES, ConfigError, build, check, read_yaml


@dataclasses.dataclass(frozen=True)
class Check:
    """How a reproduced value is compared: approx (value ± tol), at_least, at_most, between."""

    op: Literal["approx", "at_least", "at_most", "between"]
    value: float
    tol: float
    high: float

    def __post_init__(self) -> None:
        check(self.tol >= 0, "tol must be non-negative")
        check(self.op != "between" or self.high >= self.value, "between needs high >= value")

    def passes(self, x: float) -> bool:
        if self.op == "approx":
            return abs(x - self.value) <= self.tol
        if self.op == "at_least":
            return x >= self.value - self.tol
        if self.op == "at_most":
            return x <= self.value + self.tol
        return self.value - self.tol <= x <= self.high + self.tol

    def describe(self) -> str:
        t = f" (tol {self.tol:g})" if self.tol else ""
        if self.op == "approx":
            return f"{self.value:g} ± {self.tol:g}"
        if self.op == "at_least":
            return f">= {self.value:g}{t}"
        if self.op == "at_most":
            return f"<= {self.value:g}{t}"
        return f"in [{self.value:g}, {self.high:g}]{t}"


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str  # where in the write-up
    published: str  # the published value as the write-up states it
    metric: str  # dotted key into the write-up's metrics JSON
    check: Check
    profiles: tuple[str, ...]
    note: str  # deviations, or why a qualitative analogue stands in

    def __post_init__(self) -> None:
        check(bool(self.id) and " " not in self.id, f"claim id {self.id!r} must be one word")
        bad = [p for p in self.profiles if p not in PROFILES]
        check(not bad, f"claim {self.id}: unknown profile {bad[0] if bad else ''!r}")


@dataclasses.dataclass(frozen=True)
class ClaimsFile:
    writeup: str
    title: str
    claims: tuple[Claim, ...]


_CHECK_FIELDS = {"op": "approx", "value": 0.0, "tol": 0.0, "high": 0.0}


def load_claims(path: Path) -> ClaimsFile:
    """Read and validate a claims YAML; checks may omit tol/high (0)."""
    data = read_yaml(Path(path))
    for i, claim in enumerate(data.get("claims", []) or []):
        if isinstance(claim, dict) and isinstance(claim.get("check"), dict):
            claim["check"] = {**_CHECK_FIELDS, **claim["check"]}
            claim.setdefault("note", "")
        elif not isinstance(claim, dict):
            raise ConfigError(f"{path}: claims[{i}] must be a mapping")
    parsed = build(ClaimsFile, data, str(path))
    ids = [c.id for c in parsed.claims]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"{path}: duplicate claim id {sorted(dupes)[0]!r}")
    return parsed


def lookup(metrics: Mapping[str, Any], dotted: str) -> float | None:
    """Value at a dotted key path in nested metrics, or None when absent or not a number."""
    node: Any = metrics
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None
    if isinstance(node, float) and math.isnan(node):
        return None
    return float(node)


@dataclasses.dataclass(frozen=True)
class Row:
    writeup: str
    claim: Claim
    reproduced: float | None
    status: Literal["pass", "fail", "n/a", "missing"]


def evaluate(claims: ClaimsFile, metrics: Mapping[str, Any], profile: str) -> list[Row]:
    """Score every claim of one write-up against its metrics for `profile`."""
    rows = []
    for claim in claims.claims:
        value = lookup(metrics, claim.metric)
        status: Literal["pass", "fail", "n/a", "missing"]
        if profile not in claim.profiles:
            status = "n/a"
        elif value is None:
            status = "missing"
        else:
            status = "pass" if claim.check.passes(value) else "fail"
        rows.append(Row(claims.writeup, claim, value, status))
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.3e}"
    return f"{x:.4g}"


def scorecard_markdown(rows: list[Row], profile: str, provenance: str) -> str:
    """The scorecard as a Markdown table, one section per write-up."""
    counts = {s: sum(r.status == s for r in rows) for s in ("pass", "fail", "missing", "n/a")}
    lines = [
        f"# Scorecard — profile `{profile}`",
        "",
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['missing']} missing, "
        f"{counts['n/a']} not applicable to this profile (reproduced value still shown).",
        "",
        f"<sub>{provenance}</sub>",
    ]
    for writeup in dict.fromkeys(r.writeup for r in rows):
        lines += [
            "", f"## {writeup}", "",
            "| claim | published | reproduced | check | profiles | status |",
            "|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r.writeup == writeup):
            c = r.claim
            lines.append(
                f"| **{c.id}**: {c.statement} | {c.published} | {_fmt(r.reproduced)} "
                f"| {c.check.describe()} | {', '.join(c.profiles)} | {r.status} |"
            )
        notes = [r.claim for r in rows if r.writeup == writeup and r.claim.note]
        if notes:
            lines += [""] + [f"- **{c.id}**: {c.note}" for c in notes]
    return "\n".join(lines) + "\n"


def scorecard_json(rows: list[Row], profile: str) -> dict[str, Any]:
    """Numbers for `dvc metrics show`: per-write-up pass counts and each reproduced value."""
    out: dict[str, Any] = {"profile": profile}
    for r in rows:
        w = out.setdefault(r.writeup, {"pass": 0, "fail": 0, "missing": 0, "n/a": 0, "claims": {}})
        w[r.status] += 1
        w["claims"][r.claim.id] = {"reproduced": r.reproduced, "status": r.status}
    return out
