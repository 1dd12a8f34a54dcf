"""Typed, validated configuration: frozen dataclasses filled from per-profile YAML.

Each write-up keeps `config/default.yaml` (complete: the one source of every value) and
`config/smoke.yaml` / `config/paper.yaml` (overrides merged onto it). Loading checks every key,
type and value before any compute starts and raises `ConfigError` with a one-line message that
names the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin

import yaml

PROFILES: tuple[str, ...] = ("smoke", "default", "paper")
# `<base>-seed<k>`: the base profile with every seed shifted by k (a seed sweep's variant k).
_SEED_VARIANT = re.compile(r"^(?P<base>[a-z]+)-seed(?P<k>[1-9][0-9]*)$")
# Sections whose seeds stay fixed across seed variants: the training text is pinned by content.
UNSEEDED_SECTIONS: tuple[str, ...] = ("corpus", "tokenizer")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, reported as one line naming the file and key."""


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition`; for `__post_init__` value checks."""
    if not condition:
        raise ConfigError(message)


def _field(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def check_at_least(cfg: Any, section: str, **lows: float) -> None:
    """`check` each `cfg.<name> >= low`, in order: '<section>.<name> must be non-negative' for a
    low of 0, else '... must be at least <low>' (an empty `section` adds no prefix)."""
    for name, low in lows.items():
        bound = "non-negative" if low == 0 else f"at least {low}"
        check(getattr(cfg, name) >= low, f"{_field(section, name)} must be {bound}")


def check_positive(cfg: Any, section: str, *names: str) -> None:
    """`check` each `cfg.<name> > 0`, in order: '<section>.<name> must be positive'."""
    for name in names:
        check(getattr(cfg, name) > 0, f"{_field(section, name)} must be positive")


def check_lr_decay(cfg: Any, section: str) -> None:
    """The checks of a training section whose rate decays from `lr` to `lr_end`, with a
    `weight_decay` and `checkpoint_every` / `log_every` cadences (messages name `section`)."""
    check(cfg.lr > 0 and 0 <= cfg.lr_end <= cfg.lr, f"{section} needs lr > 0, 0 <= lr_end <= lr")
    check_at_least(cfg, section, weight_decay=0)
    check(cfg.checkpoint_every >= 1 and cfg.log_every >= 1,
          f"{section}.checkpoint_every and log_every must be positive")


def check_open_interval(cfg: Any, section: str, **bounds: tuple[float, float]) -> None:
    """`check` each `low < cfg.<name> < high`, in order: '<section>.<name> must lie in
    (<low>, <high>)'."""
    for name, (low, high) in bounds.items():
        check(low < getattr(cfg, name) < high,
              f"{_field(section, name)} must lie in ({low}, {high})")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # Only `X | None` (an optional section): None stays None, anything else must be an X.
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) != 1 or len(get_args(tp)) != 2:
            raise TypeError(f"{where}: unsupported config annotation {_type_name(tp)}")
        return None if value is None else _coerce(value, members[0], where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return build(tp, value, where)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is list:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping) or tp in (dict,):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = get_args(tp) or (str, Any)
        return types.MappingProxyType(
            {_coerce(k, key_t, where): _coerce(v, val_t, f"{where}.{k}") for k, v in value.items()}
        )
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML reads 1e-3 as a string (no dot before the exponent): accept numeric strings.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    raise TypeError(f"{where}: unsupported config annotation {_type_name(tp)}")


def build(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown and missing keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(fields))})"
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if has_default:
                continue
            raise ConfigError(f"{where}: missing key '{name}'")
        kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Merge `override` onto `base`; keys absent from `base` are errors (typos in overrides)."""
    out = dict(base)
    for key, value in override.items():
        if key not in base:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(base))})")
        if isinstance(value, Mapping) and isinstance(base[key], Mapping):
            out[key] = deep_merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with a one-line error when the file is missing or malformed."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping")
    return dict(data)


def check_profile(profile: Any) -> str:
    """`profile` if it names a profile or a seed variant `<base>-seed<k>` (k >= 1) of one."""
    if isinstance(profile, str) and profile in PROFILES:
        return profile
    m = _SEED_VARIANT.match(profile) if isinstance(profile, str) else None
    if m is None or m["base"] not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (choose one of: {', '.join(PROFILES)}, "
                          "or <profile>-seed<k> with k >= 1)")
    return profile


def base_profile(profile: str) -> str:
    """The profile a seed variant is built from (`default-seed2` -> `default`)."""
    check_profile(profile)
    return profile.split("-seed", 1)[0]


def seed_offset(profile: str) -> int:
    """What a seed variant adds to every seed (`default-seed2` -> 2; a base profile -> 0)."""
    check_profile(profile)
    _, _, k = profile.partition("-seed")
    return int(k) if k else 0


def _is_seed_key(key: Any) -> bool:
    return isinstance(key, str) and (key == "seed" or key.endswith("_seed"))


def shift_seeds(data: Any, offset: int, fixed_sections: tuple[str, ...] = ()) -> Any:
    """`data` with `offset` added to every integer under a `seed` / `*_seed` key, at any depth,
    except under the top-level sections in `UNSEEDED_SECTIONS` and `fixed_sections` (a
    write-up's generators of the stand-in's training text)."""

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: (v + offset if _is_seed_key(k) and type(v) is int else walk(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    if not offset or not isinstance(data, Mapping):
        return data
    keep = set(UNSEEDED_SECTIONS) | set(fixed_sections)
    return {k: (v if k in keep else walk({k: v})[k]) for k, v in data.items()}


def load_profile(
    cls: type[T], config_dir: Path, profile: str, fixed_sections: tuple[str, ...] = ()
) -> T:
    """Load `config_dir/default.yaml`, merge the base profile's overrides and any `--config`
    overrides of this write-up (shared.config_access), shift the seeds of a seed variant (not in
    `fixed_sections`), validate into `cls`; sections the job's rule does not declare are
    unreadable."""
    from shared import config_access  # it reads ConfigError from here

    base = base_profile(profile)
    base_path = config_dir / "default.yaml"
    data = read_yaml(base_path)
    where = str(base_path)
    if base != "default":
        override_path = config_dir / f"{base}.yaml"
        data = deep_merge(data, read_yaml(override_path), str(override_path))
        where = str(override_path)
    writeup = config_dir.parent.name
    job = config_access.current()
    if writeup in job.overrides:
        where = f"--config {writeup}"
        data = deep_merge(data, job.overrides[writeup], where)
    cfg = build(cls, shift_seeds(data, seed_offset(profile), fixed_sections), where)
    return config_access.guard(cfg, writeup, job)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a config dataclass (tuples as lists, paths as strings)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config's values (used in provenance and cache keys)."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
