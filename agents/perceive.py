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


class EventIndex:
    """This step's events bucketed by tile, so each agent looks only at the tiles within
    its vision radius: perception costs O(agents × radius²), not O(agents²)."""

    def __init__(self, events: Iterable[Event]):
        self.by_tile: dict[tuple[int, int], list[Event]] = {}
        for ev in events:
            self.by_tile.setdefault((ev.x, ev.y), []).append(ev)

    def near(self, x: int, y: int, radius: float) -> Iterable[Event]:
        r = int(radius)
        if (2 * r + 1) ** 2 > len(self.by_tile):  # few occupied tiles: scan them instead
            for evs in self.by_tile.values():
                yield from evs
            return
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                yield from self.by_tile.get((x + dx, y + dy), ())


def visible_events(agent: "GenerativeAgent", events: "EventIndex | Iterable[Event]") -> list[Event]:
    """Events within the vision radius and in the agent's own area, nearest first,
    at most `attention_bandwidth`, skipping those among the last `retention` observed."""
    x, y = agent.pos_xy
    area = agent.model.world.area_of(x, y)
    candidates = events.near(x, y, agent.vision_radius) if isinstance(events, EventIndex) else events
    seen: list[tuple[float, str, Event]] = []
    for ev in candidates:
        if ev.subject == agent.name:
            continue
        d = math.hypot(ev.x - x, ev.y - y)
        if d > agent.vision_radius or ev.area != area:
            continue
        seen.append((d, ev.description, ev))
    seen.sort(key=lambda t: (t[0], t[1]))
    nearest = [ev for _, _, ev in seen[: agent.attention_bandwidth]]
    return [ev for ev in nearest if ev.description not in agent.recent_observations]
