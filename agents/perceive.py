"""Perceive: what an agent notices this step (paper: vision radius, attention bandwidth, retention)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent


@dataclass(frozen=True)
class Event:
    """Something happening on a tile that others can see."""

    subject: str  # an agent name, or a place/object for object events
    description: str  # "Mei Lin is making coffee at Hobbs Cafe:counter"
    x: int
    y: int
    area: str | None
    agent_id: int | None = None


def visible_events(agent: "GenerativeAgent", events: Iterable[Event]) -> list[Event]:
    """Events within the vision radius and in the agent's own area, nearest first,
    at most `attention_bandwidth`, skipping those among the last `retention` observed."""
    x, y = agent.pos_xy
    area = agent.model.world.area_of(x, y)
    seen: list[tuple[float, str, Event]] = []
    for ev in events:
        if ev.subject == agent.name:
            continue
        d = math.hypot(ev.x - x, ev.y - y)
        if d > agent.vision_radius or ev.area != area:
            continue
        seen.append((d, ev.description, ev))
    seen.sort(key=lambda t: (t[0], t[1]))
    nearest = [ev for _, _, ev in seen[: agent.attention_bandwidth]]
    return [ev for ev in nearest if ev.description not in agent.recent_observations]
