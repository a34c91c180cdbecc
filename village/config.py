"""Knobs of a simulation that are not part of a scenario (the paper's constants as defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field

from memory.retrieval import RetrievalWeights

ABLATIONS = ("observation", "reflection", "planning")


@dataclass
class SimConfig:
    reflection_threshold: float = 150.0  # summed importance of new observations (paper: 150)
    # at most one reflection in this many simulated minutes (0: the paper's rule alone). The
    # paper's agents reflected two or three times a day; a small model rating most
    # observations 6-10 crosses 150 every ~25 observations, every few minutes in a busy town
    reflection_min_minutes: int = 180
    reflection_recent: int = 100  # records the reflection questions are asked about
    insights_per_question: int = 5
    weights: RetrievalWeights = field(default_factory=RetrievalWeights)
    k_plan: int = 8  # memories retrieved for each use
    k_react: int = 5
    k_converse: int = 5
    k_reflect: int = 10
    k_interview: int = 10
    max_utterances: int = 8  # cap on a conversation's lines (released code: 8 rounds; one
    # call writes the whole dialogue, 2-6 lines, see agents/prompts/conversation.toml)
    cooldown_minutes: int = 60  # the same pair does not talk again before this
    # an agent does not start or join another conversation this soon after its last one (0:
    # no gap; at most cooldown_minutes). Not in the paper: in a crowded town the small model
    # chose to talk with everyone in sight, 4 conversations per agent in half an hour
    talk_gap_minutes: int = 30
    wait_minutes: int = 5
    react_cooldown_minutes: int = 30  # do not reconsider the same person before this
    importance_batch: int = 20  # rate new records together once this many are pending ...
    importance_max_age_minutes: int = 60  # ... or once the oldest has waited this long
    # (and always before anything retrieves; a description already rated is not re-rated)
    ablate: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(
                f"unknown ablation {sorted(unknown)[0]!r} (expected one of: {', '.join(ABLATIONS)})"
            )
        self.ablate = frozenset(self.ablate)

    def enabled(self, module: str) -> bool:
        return module not in self.ablate
