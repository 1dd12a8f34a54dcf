"""Configuration of the SAE-methods write-up: one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `model`: the monosemanticity write-up's stand-in (passed by the rules as `--model`) or, in
  `paper`, each site's published model by name.
- `data`: token rows, the activation source (a fixed pool, or the shared activation buffer) and
  the held-out rows of loss recovered.
- `sae`: the settings every SAE shares; `methods`: name -> the `SAEConfig` fields it changes.
- `sites`: activation sites, each with its L1 sweep and the methods trained on it.
- `comparisons`: which methods and sites each claim compares; `ito`: inference-time optimisation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from shared.config import ConfigError, build, check, check_at_least, load_profile
from shared.sae import SAEConfig

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "sae_methods"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    source: Literal["stand_in", "pretrained"]
    device: Literal["auto", "cpu", "cuda"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: Literal["pool", "buffer"]
    seq_len: int
    pool_tokens: int  # pool: activations harvested once per site
    buffer_activations: int  # buffer: activations held
    rows_per_batch: int  # prompts per harvesting forward pass
    reserved_rows: int  # buffer: rows held back for Anthropic resampling's draws
    eval_rows: int  # held-out rows of loss recovered
    train_rows: int  # 0: all of the stand-in's training rows
    drop_bos: bool
    seed: int

    def __post_init__(self) -> None:
        check_at_least(self, "data", seq_len=4, pool_tokens=2, buffer_activations=2,
                       rows_per_batch=1, reserved_rows=0, eval_rows=1, train_rows=0, seed=0)


# The `sae` section: the `SAEConfig` fields every SAE of the sweep shares; `SAEConfig` itself is
# its schema (`Config.sae_config` builds and checks every site x method), so no field list here.
PER_SITE = ("d_in", "d_sae", "l1_coeffs")  # SAEConfig fields each site sets


@dataclasses.dataclass(frozen=True)
class SiteConfig:
    name: str
    model: str  # "" = the stand-in; else a published model by name
    dataset: str  # pretrained: a token data set by name; stand-in: ""
    hook: str
    d_in: int
    d_sae: int
    l1_coeffs: tuple[float, ...]
    methods: tuple[str, ...]

    def __post_init__(self) -> None:
        check(bool(self.name) and "/" not in self.name, f"site name {self.name!r}")
        check_at_least(self, f"sites.{self.name}", d_in=1, d_sae=1)
        check(len(self.l1_coeffs) >= 2 and list(self.l1_coeffs) == sorted(self.l1_coeffs),
              f"sites.{self.name}.l1_coeffs: at least two, increasing")
        check(len(set(self.methods)) == len(self.methods) and len(self.methods) > 0,
              f"sites.{self.name}.methods: distinct names")


@dataclasses.dataclass(frozen=True)
class ComparisonsConfig:
    ghost_sites: tuple[str, ...]
    k_site: str
    k_original: tuple[str, str, str]  # K = 0, K1, K2
    k_rescaled: tuple[str, str, str]
    improvements_site: str
    beta1_0: str  # the method trained with beta1 0 and a pre-encoder bias
    close_band: tuple[float, float]  # L0 range of "close to resampling"
    norm_low: float
    norm_high: float

    def __post_init__(self) -> None:
        check(self.close_band[0] < self.close_band[1], "comparisons.close_band: low < high")
        check(0 < self.norm_low < self.norm_high <= 1, "comparisons: 0 < norm_low < norm_high <= 1")


@dataclasses.dataclass(frozen=True)
class ITOConfig:
    site: str
    method: str
    target_l0s: tuple[int, ...]
    eval_rows: int
    batch_rows: int
    refine_steps: int
    scatter_dictionary: int
    min_fires: int
    seed: int

    def __post_init__(self) -> None:
        check(len(self.target_l0s) >= 2 and list(self.target_l0s) == sorted(set(self.target_l0s))
              and self.target_l0s[0] >= 1, "ito.target_l0s: at least two, increasing, >= 1")
        check_at_least(self, "ito", eval_rows=1, batch_rows=1, refine_steps=0,
                       scatter_dictionary=0, min_fires=1, seed=0)


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig
    sae: dict[str, Any]  # SAEConfig fields shared by every SAE (all but PER_SITE)
    methods: dict[str, dict[str, Any]]
    sites: tuple[SiteConfig, ...]
    comparisons: ComparisonsConfig
    ito: ITOConfig

    def __post_init__(self) -> None:
        per_site = sorted(set(PER_SITE) & set(self.sae))
        check(not per_site, f"sae.{per_site[0] if per_site else ''}: set per site, not in sae")
        names = [s.name for s in self.sites]
        check(len(set(names)) == len(names), "sites: distinct names")
        stand_in = self.model.source == "stand_in"
        for s in self.sites:
            check(stand_in == (s.model == "") and stand_in == (s.dataset == ""),
                  f"sites.{s.name}: model and dataset must be empty with model.source stand_in "
                  "and set otherwise")
            for m in s.methods:
                check(m in self.methods, f"sites.{s.name}: unknown method {m!r}")
                sae = self.sae_config(s, m)  # every combination must validate
                # The buffer serves Anthropic resampling's draws from its reserved rows.
                check(self.data.source == "pool" or sae.resample != "anthropic"
                      or self.data.reserved_rows > 0,
                      f"methods.{m}: Anthropic resampling with data.source buffer needs "
                      "data.reserved_rows > 0")
        c = self.comparisons
        for site in (*c.ghost_sites, c.k_site, c.improvements_site, self.ito.site):
            check(site in names, f"comparisons/ito: unknown site {site!r}")
        for m in (*c.k_original, *c.k_rescaled):
            check(m in self.site(c.k_site).methods, f"comparisons: {m!r} not trained on {c.k_site}")
        check(self.ito.method in self.site(self.ito.site).methods,
              f"ito.method {self.ito.method!r} not trained on {self.ito.site}")
        check(self.ito.scatter_dictionary < len(self.site(self.ito.site).l1_coeffs),
              "ito.scatter_dictionary: an index into the site's l1_coeffs")

    def site(self, name: str) -> SiteConfig:
        for s in self.sites:
            if s.name == name:
                return s
        raise ConfigError(f"unknown site {name!r}")

    def sae_config(self, site: SiteConfig, method: str) -> SAEConfig:
        """The SAE settings of `method` on `site`, all its L1 coefficients as instances."""
        per_site = {"d_in": site.d_in, "d_sae": site.d_sae, "l1_coeffs": site.l1_coeffs}
        return build(SAEConfig, {**self.sae, **per_site, **self.methods[method]},
                     f"methods.{method} on site {site.name}")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    return load_profile(Config, CONFIG_DIR, profile)
