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
    """This step's events bucketed into square cells, so each agent looks only at the
    cells its vision radius covers: perception costs O(agents × events nearby), not
    O(agents²). A cell is `cell` tiles wide (default 8, about a vision radius), so a
    look of radius r ≤ cell visits at most 3×3 cells (2×2 to 3×3), not (2r+1)² tiles.
    Events come out cell by cell, each cell's in input order (`visible_events` sorts
    them fully, so the order does not matter)."""

    def __init__(self, events: Iterable[Event], cell: int = 8):
        self.cell = max(1, int(cell))
        c = self.cell
        self.by_cell: dict[tuple[int, int], list[Event]] = {}
        self.count = 0
        for ev in events:
            self.by_cell.setdefault((ev.x // c, ev.y // c), []).append(ev)
            self.count += 1

    def near(self, x: int, y: int, radius: float) -> Iterable[Event]:
        r = int(radius)
        c = self.cell
        by_cell = self.by_cell
        x0, x1, y0, y1 = (x - r) // c, (x + r) // c, (y - r) // c, (y + r) // c
        if (x1 - x0 + 1) * (y1 - y0 + 1) > len(by_cell):  # few occupied cells: scan them
            for evs in by_cell.values():
                yield from evs
            return
        for cy in range(y0, y1 + 1):
            for cx in range(x0, x1 + 1):
                evs = by_cell.get((cx, cy))
                if evs:
                    yield from evs


def visible_events(agent: "GenerativeAgent", events: "EventIndex | Iterable[Event]") -> list[Event]:
    """Events within the vision radius and in the agent's own area, nearest first,
    at most `attention_bandwidth`, skipping those among the last `retention` observed."""
    x, y = agent.pos_xy
    area = agent.model.world.area_of(x, y)
    candidates = events.near(x, y, agent.vision_radius) if isinstance(events, EventIndex) else events
    seen: list[tuple[float, str, int, int, str, Event]] = []
    name, r = agent.name, agent.vision_radius
    hypot = math.hypot
    for ev in candidates:
        if ev.subject == name:
            continue
        d = hypot(ev.x - x, ev.y - y)
        if d > r or ev.area != area:
            continue
        seen.append((d, ev.description, ev.y, ev.x, ev.subject, ev))
    # nearest first; ties broken by everything an event shows, so the candidates' order
    # (the index's) never matters
    seen.sort(key=lambda t: t[:5])
    nearest = [t[5] for t in seen[: agent.attention_bandwidth]]
    return [ev for ev in nearest if ev.description not in agent.recent_observations]
