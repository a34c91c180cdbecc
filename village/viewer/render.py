"""Drawing a replay frame with pygame: the map, agents, speech bubbles, timeline bar, panels.

Used by the interactive window (:mod:`village.viewer.app`) and by headless snapshots
(:mod:`village.viewer.snapshot`). Geometry: a tile ``(x, y)`` is drawn at
``origin + (x * tile, y * tile)``; an agent's sprite is a disc of its colour centred on its
tile; a current utterance is a white bubble above its speaker.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from village.viewer import style  # noqa: E402
from village.viewer.style import Colour  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from village.replay import AgentState, Frame, ReplayReader
    from village.viewer.playback import Playback

BAR_H = 52
PANEL_W = 340
MAX_MAP_PIXELS = 24_000_000  # cap on the cached map surface (zoom limit for huge maps)

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
    "C:/Windows/Fonts/seguisym.ttf",
)
_font_path: str | None | bool = False


def font_path() -> str | None:
    """A TrueType font with the icon symbols (DejaVu Sans) if one is installed, else None."""
    global _font_path
    if _font_path is False:
        found = next((p for p in _FONT_CANDIDATES if Path(p).exists()), None)
        if found is None:
            try:
                found = pygame.font.match_font("dejavusans") or None
            except Exception:  # noqa: BLE001 - fc-match missing or broken
                found = None
        _font_path = found
    return _font_path  # type: ignore[return-value]


@dataclass
class View:
    """Where the map is drawn: the viewport rectangle, the tile size and the map origin."""

    rect: pygame.Rect
    tile: int
    ox: float
    oy: float

    def tile_centre(self, x: float, y: float) -> tuple[int, int]:
        return (int(self.rect.x + self.ox + x * self.tile + self.tile // 2),
                int(self.rect.y + self.oy + y * self.tile + self.tile // 2))

    def tile_at(self, px: int, py: int) -> tuple[int, int]:
        return (int((px - self.rect.x - self.ox) // self.tile),
                int((py - self.rect.y - self.oy) // self.tile))


class Renderer:
    """Draws frames of one run; caches the map per tile size and rendered text."""

    def __init__(self, reader: "ReplayReader"):
        if not pygame.font.get_init():
            pygame.font.init()
        self.reader = reader
        self.world = reader.world
        self.colours = style.place_colours(self.world)
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._maps: OrderedDict[int, pygame.Surface] = OrderedDict()
        self._text: OrderedDict[tuple, pygame.Surface] = OrderedDict()
        self._has_symbols: bool | None = None
        self._panel_cache: tuple[Any, list] | None = None
        self._conv_marks: tuple[int, list[int]] | None = None

    # ------------------------------------------------------------------ text
    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        key = (max(6, int(size)), bold)
        f = self._fonts.get(key)
        if f is None:
            f = pygame.font.Font(font_path(), key[0])
            f.bold = bold and font_path() is not None
            self._fonts[key] = f
        return f

    def text(self, s: str, size: int, colour: Colour, bold: bool = False) -> pygame.Surface:
        key = (s, int(size), colour, bold)
        surf = self._text.get(key)
        if surf is None:
            surf = self.font(size, bold).render(s, True, colour)
            self._text[key] = surf
            if len(self._text) > 2000:
                self._text.popitem(last=False)
        else:
            self._text.move_to_end(key)
        return surf

    @property
    def symbols(self) -> bool:
        """Whether the font draws the icon symbols (else ASCII icons)."""
        if self._has_symbols is None:
            if font_path() is None:
                self._has_symbols = False
            else:
                f = self.font(16)
                missing = f.metrics("\ue000")
                self._has_symbols = all(f.metrics(s) != missing for _, s, _ in style.ICONS)
        return self._has_symbols

    def icon(self, a: "AgentState") -> str:
        if a.emoji and self.symbols:
            return a.emoji
        return style.action_icon(a.action, a.asleep, a.conversation_id is not None,
                                 ascii_only=not self.symbols)

    def wrap(self, s: str, size: int, width: int, max_lines: int = 99) -> list[str]:
        """Greedy word wrap to a pixel width."""
        f = self.font(size)
        lines: list[str] = []
        for para in s.split("\n"):
            words = para.split()
            cur = ""
            for w in words:
                cand = f"{cur} {w}" if cur else w
                if f.size(cand)[0] <= width or not cur:
                    cur = cand
                else:
                    lines.append(cur)
                    cur = w
            lines.append(cur)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1].rstrip(". ") + "…"
        return lines

    # ------------------------------------------------------------------ the map
    def max_tile(self) -> int:
        w, h = self.world.width, self.world.height
        return max(8, min(96, int((MAX_MAP_PIXELS / max(1, w * h)) ** 0.5)))

    def map_surface(self, tile: int) -> pygame.Surface:
        """The static map at a tile size: places coloured, walls, objects, labels (cached)."""
        surf = self._maps.get(tile)
        if surf is not None:
            self._maps.move_to_end(tile)
            return surf
        w = self.world
        surf = pygame.Surface((w.width * tile, w.height * tile))
        surf.fill(style.WALL)
        grid = tile >= 16
        for y in range(w.height):
            for x in range(w.width):
                c = style.tile_colour(w, self.colours, x, y)
                r = pygame.Rect(x * tile, y * tile, tile, tile)
                if not w.is_walkable(x, y):
                    surf.fill(c, r)
                    if tile >= 10 and w.is_walkable(x, y + 1):  # a lit edge under walls
                        surf.fill(style.shade(c, 1.35), (r.x, r.bottom - max(1, tile // 8), tile,
                                                         max(1, tile // 8)))
                    continue
                base = self.colours.get(w.room_of(x, y) or w.area_of(x, y) or "", c)
                surf.fill(base, r)
                if grid:
                    pygame.draw.rect(surf, style.shade(base, 0.94), r, 1)
                if w.object_at(x, y):
                    inset = max(1, tile // 6)
                    pygame.draw.rect(surf, c, r.inflate(-2 * inset, -2 * inset),
                                     border_radius=max(1, tile // 6))
                    pygame.draw.rect(surf, style.shade(c, 0.75), r.inflate(-2 * inset, -2 * inset), 1,
                                     border_radius=max(1, tile // 6))
        self._draw_labels(surf, tile)
        self._maps[tile] = surf
        if len(self._maps) > 6:
            self._maps.popitem(last=False)
        return surf

    def _bbox(self, name: str) -> pygame.Rect:
        tiles = self.world.places[name].tiles
        xs = [t[0] for t in tiles]
        ys = [t[1] for t in tiles]
        return pygame.Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def _fit_text(self, s: str, size: int, width: int, colour: Colour, bold: bool = False,
                  min_size: int = 8) -> pygame.Surface | None:
        while size >= min_size:
            t = self.text(s, size, colour, bold)
            if t.get_width() <= width:
                return t
            size -= 1
        return None

    def _draw_labels(self, surf: pygame.Surface, tile: int) -> None:
        w = self.world
        size = max(8, min(16, int(tile * 0.5)))
        has_rooms = {p.parent for p in w.places.values() if p.kind == "room"}
        for name, p in w.places.items():
            if p.kind == "object":
                if tile >= 40:
                    (x, y), = p.tiles
                    t = self._fit_text(p.short_name, max(8, tile // 5), tile - 2, style.LABEL)
                    if t:
                        surf.blit(t, (x * tile + (tile - t.get_width()) // 2, y * tile + tile - t.get_height()))
                continue
            if p.kind == "area" and name in has_rooms:
                continue
            tw = self.text(p.short_name, size, style.LABEL).get_width()
            x0, y0, run = style.label_spot(self.world, name, (tw + 4) / tile)
            t = self._fit_text(p.short_name, size, run * tile - 4, style.LABEL)
            if t is not None:
                cx = x0 * tile + run * tile // 2
                cy = y0 * tile + tile // 2
                surf.blit(t, (cx - t.get_width() // 2, cy - t.get_height() // 2))
        for area in sorted(has_rooms):
            if area is None:
                continue
            box = self._bbox(area)
            t = self._fit_text(area, size, box.w * tile - 6, (250, 250, 245), bold=True)
            if t is None:
                continue
            bg = pygame.Surface((t.get_width() + 6, t.get_height() + 2), pygame.SRCALPHA)
            bg.fill((30, 30, 40, 170))
            x = box.x * tile + 3
            y = box.y * tile + 2
            surf.blit(bg, (x, y))
            surf.blit(t, (x + 3, y + 1))

    # ------------------------------------------------------------------ the world
    def draw_world(self, surf: pygame.Surface, view: View, frame: "Frame", *,
                   next_frame: "Frame | None" = None, t: float = 0.0,
                   selected: int | None = None) -> dict[int, pygame.Rect]:
        """Map, agents and bubbles into ``view.rect``; returns each agent's sprite rect."""
        surf.set_clip(view.rect)
        surf.fill(style.OFFMAP, view.rect)
        surf.blit(self.map_surface(view.tile), (view.rect.x + int(view.ox), view.rect.y + int(view.oy)))
        ts = view.tile
        r = max(3, int(ts * 0.42))
        positions: dict[int, tuple[float, float]] = {}
        nxt = {a.id: a for a in next_frame.agents} if next_frame is not None and t > 0 else {}
        for a in frame.agents:
            x, y = float(a.x), float(a.y)
            b = nxt.get(a.id)
            if b is not None and abs(b.x - a.x) + abs(b.y - a.y) == 1:
                x += (b.x - a.x) * t
                y += (b.y - a.y) * t
            positions[a.id] = (x, y)
        # agents sharing a tile fan out a little so every one stays visible and clickable
        by_tile: dict[tuple[float, float], list[int]] = {}
        for aid, p in positions.items():
            by_tile.setdefault(p, []).append(aid)
        offsets: dict[int, tuple[int, int]] = {}
        for ids in by_tile.values():
            if len(ids) > 1:
                for k, aid in enumerate(ids):
                    offsets[aid] = ((k % 3 - 1) * r // 2, (k // 3 - (len(ids) - 1) // 6) * r // 2)
        rects: dict[int, pygame.Rect] = {}
        show_text = ts >= 14
        for a in frame.agents:
            cx, cy = view.tile_centre(*positions[a.id])
            dx, dy = offsets.get(a.id, (0, 0))
            cx, cy = cx + dx, cy + dy
            col = style.agent_colour(a.id)
            if a.id == selected:
                pygame.draw.circle(surf, (255, 210, 0), (cx, cy), r + max(2, ts // 10))
            if a.asleep:  # a night-blue halo; the body keeps the agent's colour
                pygame.draw.circle(surf, (40, 50, 110), (cx, cy), r + max(1, ts // 12))
            pygame.draw.circle(surf, col, (cx, cy), r)
            pygame.draw.circle(surf, style.shade(col, 0.55), (cx, cy), r, max(1, ts // 24))
            if show_text:
                init = self.text(self.reader.agent(a.id).initials, max(7, int(r * 0.9)),
                                 style.text_on(col), bold=True)
                surf.blit(init, (cx - init.get_width() // 2, cy - init.get_height() // 2))
            if ts >= 16:
                br = max(5, int(r * 0.55))
                bx, by = cx + int(r * 0.8), cy - int(r * 0.8)
                pygame.draw.circle(surf, (250, 248, 225), (bx, by), br)
                pygame.draw.circle(surf, (60, 60, 60), (bx, by), br, 1)
                ic = self.text(self.icon(a), max(7, int(br * 1.5)), (30, 30, 30))
                surf.blit(ic, (bx - ic.get_width() // 2, by - ic.get_height() // 2))
            rects[a.id] = pygame.Rect(cx - r, cy - r, 2 * r, 2 * r)
        for a in frame.agents:
            if a.utterance:
                self._bubble(surf, view.rect, rects[a.id], a.utterance, ts)
        surf.set_clip(None)
        return rects

    def bubble_rect(self, clip: pygame.Rect, sprite: pygame.Rect, text: str,
                    tile: int) -> tuple[pygame.Rect, list[str], int]:
        size = max(11, min(15, tile // 2))
        width = max(120, min(260, tile * 9))
        lines = self.wrap(text, size, width - 12, max_lines=3)
        lh = self.font(size).get_linesize()
        w = max(self.font(size).size(s)[0] for s in lines) + 12
        h = lh * len(lines) + 8
        rect = pygame.Rect(0, 0, w, h)
        rect.midbottom = (sprite.centerx, sprite.top - 7)
        rect.clamp_ip(clip)
        return rect, lines, size

    def _bubble(self, surf: pygame.Surface, clip: pygame.Rect, sprite: pygame.Rect, text: str,
                tile: int) -> None:
        rect, lines, size = self.bubble_rect(clip, sprite, text, tile)
        tail_x = min(max(sprite.centerx, rect.left + 8), rect.right - 8)
        tail = [(tail_x - 5, rect.bottom - 1), (tail_x + 5, rect.bottom - 1), (sprite.centerx, sprite.top - 1)]
        pygame.draw.polygon(surf, style.BUBBLE, tail)
        pygame.draw.lines(surf, style.BUBBLE_EDGE, False, [tail[0], tail[2], tail[1]], 1)
        pygame.draw.rect(surf, style.BUBBLE, rect, border_radius=6)
        pygame.draw.rect(surf, style.BUBBLE_EDGE, rect, 1, border_radius=6)
        pygame.draw.line(surf, style.BUBBLE, (tail[0][0] + 1, rect.bottom - 1), (tail[1][0] - 1, rect.bottom - 1))
        y = rect.y + 4
        lh = self.font(size).get_linesize()
        for s in lines:
            surf.blit(self.text(s, size, (20, 20, 20)), (rect.x + 6, y))
            y += lh

    # ------------------------------------------------------------------ the bar
    def timeline_rect(self, bar: pygame.Rect) -> pygame.Rect:
        return pygame.Rect(bar.x + 10, bar.y + 7, max(10, bar.w - 20), 12)

    def step_at_x(self, bar: pygame.Rect, px: int, first: int, last: int) -> int:
        tl = self.timeline_rect(bar)
        f = min(max((px - tl.x) / max(1, tl.w), 0.0), 1.0)
        return int(round(first + f * (last - first)))

    def draw_bar(self, surf: pygame.Surface, bar: pygame.Rect, frame: "Frame", pb: "Playback",
                 note: str = "") -> None:
        rd = self.reader
        surf.fill(style.BAR_BG, bar)
        tl = self.timeline_rect(bar)
        pygame.draw.rect(surf, style.TIMELINE_BG, tl, border_radius=4)
        first, last = pb.first, max(pb.last, pb.first + 1)
        span = last - first

        def xof(step: float) -> int:
            return tl.x + int((step - first) / span * tl.w)

        cur = xof(frame.step)
        pygame.draw.rect(surf, style.TIMELINE_FG, (tl.x, tl.y, max(0, cur - tl.x), tl.h), border_radius=4)
        # conversations as ticks, midnights as labelled lines
        if self._conv_marks is None or self._conv_marks[0] != rd.last_step:
            marks = [c["step_start"] for c in rd.conversations()] if "conversations" in rd._tables else []
            self._conv_marks = (rd.last_step, marks)
        for s in self._conv_marks[1]:
            x = xof(s)
            pygame.draw.line(surf, (150, 200, 255), (x, tl.bottom - 4), (x, tl.bottom - 1))
        steps_per_day = 86400 // rd.seconds_per_step
        start = rd.game_time(first)
        midnight = (86400 - (start.hour * 3600 + start.minute * 60 + start.second)) // rd.seconds_per_step
        s = first + midnight
        while s <= last:
            x = xof(s)
            pygame.draw.line(surf, style.BAR_FG, (x, tl.y - 2), (x, tl.bottom + 1))
            s += steps_per_day
        pygame.draw.circle(surf, style.BAR_FG, (cur, tl.centery), 7)
        pygame.draw.circle(surf, style.TIMELINE_FG, (cur, tl.centery), 5)
        y = tl.bottom + 6
        x = bar.x + 10
        parts = [(pb.label(), (255, 200, 90) if pb.live else style.BAR_FG, True),
                 (frame.clock, style.BAR_FG, True),
                 (f"step {frame.step} / {pb.last}", (190, 190, 200), False)]
        if rd.running:
            parts.append(("run in progress", (120, 220, 140), False))
        if note:
            parts.append((note, (255, 200, 90), False))
        for s_, col, bold in parts:
            t = self.text(s_, 15, col, bold)
            surf.blit(t, (x, y))
            x += t.get_width() + 18
        h = self.text("H: help", 14, (170, 170, 185))
        if x + h.get_width() < bar.right - 10:
            surf.blit(h, (bar.right - 10 - h.get_width(), y + 1))

    # ------------------------------------------------------------------ the side panel
    def panel_lines(self, agent_id: int, frame: "Frame") -> list[tuple[str, int, Colour, bool]]:
        """(text, size, colour, bold) rows of an agent's panel at a frame (cached per step)."""
        key = (agent_id, frame.step)
        if self._panel_cache and self._panel_cache[0] == key:
            return self._panel_cache[1]
        rd = self.reader
        ag = rd.agent(agent_id)
        st = frame.agent(agent_id)
        dark, grey, accent = (25, 25, 30), (95, 95, 105), (150, 70, 20)
        rows: list[tuple[str, int, Colour, bool]] = [(ag.name, 20, style.agent_colour(ag.id), True)]
        sub = ", ".join(ag.traits)
        rows.append((f"{ag.age or '?'} · {sub}" if sub else f"age {ag.age}", 13, grey, False))
        rows.append(("", 6, dark, False))
        rows.append(("Now", 15, accent, True))
        act = st.action or "idle"
        rows.append((f"{self.icon(st)}  {act}", 14, dark, False))
        rows.append((f"at {st.place or 'the street'}", 13, grey, False))
        if st.action_place and st.action_place != st.place and not st.asleep:
            rows.append((f"heading for {st.action_place}", 13, grey, False))
        if st.utterance:
            rows.append((f"says: “{st.utterance}”", 13, dark, False))
        plans = rd.plans(agent_id, frame.step)
        rows.append(("", 6, dark, False))
        rows.append(("Today's plan", 15, accent, True))
        if not plans.day:
            rows.append(("(no plan yet)", 13, grey, False))
        now = frame.time.isoformat(timespec="seconds")
        for p in plans.day:
            on = p["start"] <= now < p["end"]
            rows.append((f"{p['start'][11:16]}–{p['end'][11:16]}  {p['description']} @ {p['place']}",
                         13, dark if on else grey, on))
        if plans.action:
            p = plans.action
            rows.append((f"action {p['start'][11:16]}–{p['end'][11:16]}: {p['description']}", 13, dark, False))
        rows.append(("", 6, dark, False))
        rows.append(("Latest memories", 15, accent, True))
        for m in rd.memories(agent_id, frame.step, limit=8):
            rows.append((f"[{m['kind']} {m['importance']}] {m['description']}", 12, dark, False))
        self._panel_cache = (key, rows)
        return rows

    def draw_panel(self, surf: pygame.Surface, rect: pygame.Rect, agent_id: int, frame: "Frame") -> None:
        surf.fill(style.PANEL_BG, rect)
        pygame.draw.line(surf, (180, 180, 170), rect.topleft, rect.bottomleft, 2)
        surf.set_clip(rect)
        y = rect.y + 10
        width = rect.w - 24
        for text, size, col, bold in self.panel_lines(agent_id, frame):
            if not text:
                y += size
                continue
            for line in self.wrap(text, size, width, max_lines=4):
                t = self.text(line, size, col, bold)
                surf.blit(t, (rect.x + 12, y))
                y += self.font(size).get_linesize()
            if y > rect.bottom:
                break
        surf.set_clip(None)

    # ------------------------------------------------------------------ help
    HELP = (
        ("Space", "play / pause"),
        ("← / →", "step back / forward (Shift: 10 min)"),
        ("PgUp / PgDn", "one hour back / forward"),
        ("Home / End", "first / last step (End follows a live run)"),
        ("↑ / ↓  or  ] / [", "faster / slower (1× … 64×)"),
        ("L", "follow the newest step of a run in progress"),
        ("click / drag timeline", "seek"),
        ("click an agent", "side panel: action, plan, memories"),
        ("Tab / Shift+Tab", "next / previous agent"),
        ("wheel  or  + / -", "zoom"),
        ("drag map  or  W A S D", "pan"),
        ("F", "fit the map to the window"),
        ("P", "save a PNG of this frame"),
        ("Esc", "close panel / help"),
        ("H  or  ?", "this help"),
        ("Q", "quit"),
    )

    def draw_help(self, surf: pygame.Surface, area: pygame.Rect) -> None:
        w = min(560, area.w - 20)
        h = min(60 + 24 * len(self.HELP), area.h - 20)
        box = pygame.Rect(0, 0, w, h)
        box.center = area.center
        shade_ = pygame.Surface(box.size, pygame.SRCALPHA)
        shade_.fill((15, 15, 25, 225))
        surf.blit(shade_, box.topleft)
        pygame.draw.rect(surf, (200, 200, 210), box, 1, border_radius=6)
        t = self.text("Keyboard and mouse", 18, (250, 250, 245), True)
        surf.blit(t, (box.x + 16, box.y + 12))
        y = box.y + 46
        for k, v in self.HELP:
            surf.blit(self.text(k, 14, (255, 200, 90), True), (box.x + 16, y))
            surf.blit(self.text(v, 14, (230, 230, 235)), (box.x + 215, y))
            y += 24
