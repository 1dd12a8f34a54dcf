"""Configuration of the fact-finding replication (posts 1, 3 and 4): one frozen dataclass per part.

Values live in `config/default.yaml` (complete) with `smoke.yaml` / `paper.yaml` overrides.

- `world`, `corpus`, `tokenizer`, `lm`: the stand-in (smoke, default): a synthetic world of
  people with memorised attributes (`world.py`) mixed into the local corpus, and a Pythia-shaped
  LM trained on it. The paper profile reads Pythia 2.8B by name and the athlete table in
  `data/` instead.
- `model`: which LM is studied, the prompt form and batch sizes.
- The analysis sections (`circuit`, `probes`, ...) belong to the analysis modules.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from replications.fact_finding.circuit import CircuitSettings
from replications.fact_finding.neurons import NeuronSettings
from replications.fact_finding.toy_memorisation import MemorisationSettings
from replications.fact_finding.world import WorldConfig
from shared.config import check, check_at_least, load_profile
from shared.corpus import CorpusConfig
from shared.lm_train import StandInConfig
from shared.tokenizer import TokenizerConfig

CONFIG_DIR = Path(__file__).parent / "config"
WRITEUP = "fact_finding"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The LM studied and how facts are put to it."""

    source: Literal["stand_in", "pretrained"]  # stand_in: the `lm` section, trained in the DAG
    name: str  # pretrained: EleutherAI/pythia-2.8b; stand_in: a label
    prompt_prefix: str  # put before "Fact: <name> ..." (the paper's one-shot example)
    min_known_people: int  # fewer known two-token names than this stops the DAG with an error
    batch_size: int  # prompts per forward pass
    device: Literal["auto", "cpu", "cuda"]

    def __post_init__(self) -> None:
        check(bool(self.name), "model.name must not be empty")
        check(self.min_known_people >= 2 and self.batch_size >= 1,
              "model.min_known_people must be >= 2 and batch_size >= 1")


@dataclasses.dataclass(frozen=True)
class PaperData:
    """The paper profile's fact table (kept in the repository)."""

    athletes: str  # CSV under replications/fact_finding/: first, last, sport
    entity_facts: str  # YAML under replications/fact_finding/: a few people's several facts
    n_made_up: int  # made-up names: first name + surname pairs from the table, nobody's name
    seed: int  # seeds the made-up names' sample

    def __post_init__(self) -> None:
        check_at_least(self, "paper_data", n_made_up=1, seed=0)


@dataclasses.dataclass(frozen=True)
class Config:
    world: WorldConfig
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    lm: StandInConfig
    model: ModelSettings
    paper_data: PaperData
    neurons: NeuronSettings  # the lookup MLPs' neurons (neurons.py, rules/neurons.smk)
    circuit: CircuitSettings  # patching, attribute head, effective model, probes, paths
    memorisation: MemorisationSettings  # post 4's toy MLPs (toy_memorisation.py)

    def __post_init__(self) -> None:
        if self.model.source == "stand_in":
            check(self.lm.model.n_ctx >= self.tokenizer.seq_len,
                  "lm.model.n_ctx must be at least tokenizer.seq_len")


def load(profile: str) -> Config:
    """The validated configuration of `profile`."""
    # Seed variants keep `world`'s seed: the world's fact documents are part of the stand-in's training text, which stays
    # the same across a seed sweep (the corpus lock pins it).
    return load_profile(Config, CONFIG_DIR, profile, fixed_sections=("world",))
