"""Claims files and the scorecard.

Each write-up keeps `claims.yaml`: every quantitative statement of the write-up, its published
value, the metric (a dotted key into the write-up's metrics JSON) that reproduces it, a check with
its tolerance, and the profiles the check applies to. The scorecard evaluates every claim against
the metrics of one profile: pass / fail where the claim applies, n/a (value still shown) where
it does not, and missing where the metric was not produced. A claim may also carry a
`contradiction`: a second check describing a result opposite in kind to the write-up's; a
failed claim whose contradiction check passes is "contradicts". A seed variant of a profile
(`default-seed1`) is scored as its base profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from shared.config import PROFILES, ConfigError, base_profile, build, check, read_yaml
from shared.io import read_json


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

    def margin(self, x: float) -> float:
        """Signed distance from `x` to the nearest edge of the accepted region, in the claim's
        units: >= 0 passes (0 on the edge), < 0 fails."""
        if self.op == "approx":
            return self.tol - abs(x - self.value)
        if self.op == "at_least":
            return x - (self.value - self.tol)
        if self.op == "at_most":
            return (self.value + self.tol) - x
        return min(x - (self.value - self.tol), (self.high + self.tol) - x)

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
class Contradiction(Check):
    """A result opposite in kind to the claim (a check of the same metric) and why it is one."""

    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.reason.strip()), "a contradiction needs a reason")


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
    contradiction: Contradiction | None = None

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
    """Read and validate a claims YAML; checks (and contradictions) may omit tol/high (0)."""
    data = read_yaml(Path(path))
    for i, claim in enumerate(data.get("claims", []) or []):
        if isinstance(claim, dict):
            for key in ("check", "contradiction"):
                if isinstance(claim.get(key), dict):
                    claim[key] = {**_CHECK_FIELDS, **claim[key]}
            if isinstance(claim.get("check"), dict):
                claim.setdefault("note", "")
        else:
            raise ConfigError(f"{path}: claims[{i}] must be a mapping")
    parsed = build(ClaimsFile, data, str(path))
    ids = [c.id for c in parsed.claims]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"{path}: duplicate claim id {sorted(dupes)[0]!r}")
    return parsed


def writeup_claims(name: str, path: Path | str) -> ClaimsFile:
    """The claims file at `path`, which must be write-up `name`'s."""
    claims = load_claims(Path(path))
    if claims.writeup != name:
        raise ConfigError(f"{path}: writeup is {claims.writeup!r}, expected {name!r}")
    return claims


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


Status = Literal["pass", "fail", "contradicts", "missing", "n/a"]
# Every status, in the order the scorecard counts them.
STATUSES: tuple[str, ...] = ("pass", "fail", "contradicts", "missing", "n/a")


@dataclasses.dataclass(frozen=True)
class Row:
    writeup: str
    claim: Claim
    reproduced: float | None
    status: Status
    margin: float | None = None  # the main check's margin (None when the value is missing)


def evaluate(claims: ClaimsFile, metrics: Mapping[str, Any], profile: str) -> list[Row]:
    """Score every claim of one write-up against its metrics for `profile` (a seed variant
    counts as its base profile)."""
    base = base_profile(profile)
    rows = []
    for claim in claims.claims:
        value = lookup(metrics, claim.metric)
        margin = None if value is None else claim.check.margin(value)
        status: Status
        if base not in claim.profiles:
            status = "n/a"
        elif value is None:
            status = "missing"
        elif claim.check.passes(value):
            status = "pass"
        elif claim.contradiction is not None and claim.contradiction.passes(value):
            status = "contradicts"
        else:
            status = "fail"
        rows.append(Row(claims.writeup, claim, value, status, margin))
    return rows


def claims_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a script that scores write-ups: --profile and, once per write-up,
    --writeup NAME CLAIMS METRICS."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--writeup", nargs=3, action="append", metavar=("NAME", "CLAIMS", "METRICS"),
                    required=True)
    return ap


def evaluate_writeups(writeups: Iterable[Sequence[str]], profile: str) -> list[Row]:
    """The rows of every (name, claims file, metrics file) of --writeup, in that order."""
    rows: list[Row] = []
    for name, claims_path, metrics_path in writeups:
        rows += evaluate(writeup_claims(name, claims_path), read_json(Path(metrics_path)),
                         profile)
    return rows


def status_text(row: Row) -> str:
    """The status as the scorecard prints it: a contradiction with its reason."""
    if row.status == "contradicts" and row.claim.contradiction is not None:
        return f"contradicts: {row.claim.contradiction.reason}"
    return row.status


def counts(rows: list[Row]) -> dict[str, int]:
    return {s: sum(r.status == s for r in rows) for s in STATUSES}


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.3e}"
    return f"{x:.4g}"


def fmt_margin(x: float | None) -> str:
    """A margin with its sign (+ passes)."""
    return "—" if x is None else ("+" if x >= 0 else "") + _fmt(x)


def scorecard_markdown(rows: list[Row], profile: str, provenance: str) -> str:
    """The scorecard as a Markdown table, one section per write-up."""
    n = counts(rows)
    lines = [
        f"# Scorecard — profile `{profile}`",
        "",
        f"{n['pass']} pass, {n['fail']} fail, {n['contradicts']} contradict the write-up, "
        f"{n['missing']} missing, {n['n/a']} not applicable to this profile (reproduced value "
        "still shown). Margin: distance to the nearest edge of the check's accepted region, in "
        "the claim's units (+ passes, − fails).",
        "",
        f"<sub>{provenance}</sub>",
    ]
    for writeup in dict.fromkeys(r.writeup for r in rows):
        lines += [
            "", f"## {writeup}", "",
            "| claim | published | reproduced | check | margin | profiles | status |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r.writeup == writeup):
            c = r.claim
            lines.append(
                f"| **{c.id}**: {c.statement} | {c.published} | {_fmt(r.reproduced)} "
                f"| {c.check.describe()} | {fmt_margin(r.margin)} | {', '.join(c.profiles)} "
                f"| {status_text(r)} |"
            )
        notes = [r.claim for r in rows if r.writeup == writeup and r.claim.note]
        if notes:
            lines += [""] + [f"- **{c.id}**: {c.note}" for c in notes]
    return "\n".join(lines) + "\n"


def scorecard_json(rows: list[Row], profile: str) -> dict[str, Any]:
    """Numbers for `dvc metrics show`: per-write-up status counts and each reproduced value and
    margin."""
    out: dict[str, Any] = {"profile": profile}
    for r in rows:
        w = out.setdefault(r.writeup, {**dict.fromkeys(STATUSES, 0), "claims": {}})
        w[r.status] += 1
        entry: dict[str, Any] = {"reproduced": r.reproduced, "margin": r.margin,
                                 "status": r.status}
        if r.status == "contradicts" and r.claim.contradiction is not None:
            entry["reason"] = r.claim.contradiction.reason
        w["claims"][r.claim.id] = entry
    return out
