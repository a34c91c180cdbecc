"""The replay clock both viewers share: position, play/pause, speed, seeking, live follow.

At 1× playback advances :data:`BASE_RATE` steps per wall-clock second (one step is
``seconds_per_step`` of game time, 10 s by default); speeds go 1×, 2×, 4× ... 64×.
"""
from __future__ import annotations

from dataclasses import dataclass

SPEEDS = (1, 2, 4, 8, 16, 32, 64)
BASE_RATE = 2.0  # steps per second at 1×


@dataclass
class Playback:
    first: int
    last: int
    pos: float = 0.0
    playing: bool = False
    speed: int = 1
    live: bool = False  # pinned to the newest step of a run still being written

    def __post_init__(self) -> None:
        self.pos = float(min(max(self.pos, self.first), max(self.last, self.first)))

    @property
    def step(self) -> int:
        return int(self.pos)

    @property
    def frac(self) -> float:
        """How far between ``step`` and ``step + 1`` the clock is (for smooth movement)."""
        return self.pos - int(self.pos) if self.playing and self.step < self.last else 0.0

    def tick(self, dt: float, growing: bool = False) -> int:
        """Advance by ``dt`` wall seconds. At the end: wait if the run is ``growing``, else pause."""
        if self.live:
            self.pos = float(self.last)
            return self.step
        if self.playing:
            self.pos += dt * self.speed * BASE_RATE
            if self.pos >= self.last:
                self.pos = float(self.last)
                if not growing:
                    self.playing = False
        return self.step

    def extend(self, last: int) -> None:
        """The run grew (or was re-read): new last step."""
        self.last = max(last, self.first)
        if self.live:
            self.pos = float(self.last)

    def seek(self, step: float) -> int:
        self.live = False
        self.pos = float(min(max(int(step), self.first), max(self.last, self.first)))
        return self.step

    def step_by(self, n: int) -> int:
        return self.seek(self.step + n)

    def toggle(self) -> None:
        if self.live:
            self.live = False
            self.playing = False
            return
        if not self.playing and self.step >= self.last:
            self.pos = float(self.first)  # play again from the start
        self.playing = not self.playing

    def faster(self) -> int:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 0
        self.speed = SPEEDS[min(i + 1, len(SPEEDS) - 1)]
        return self.speed

    def slower(self) -> int:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 0
        self.speed = SPEEDS[max(i - 1, 0)]
        return self.speed

    def go_live(self) -> None:
        self.live = True
        self.playing = False
        self.pos = float(self.last)

    def label(self) -> str:
        if self.live:
            return "LIVE"
        return f"{'▶' if self.playing else '❚❚'} {self.speed}×"
