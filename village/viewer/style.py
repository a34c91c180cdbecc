"""Colours and action icons shared by the pygame and terminal viewers.

Colours are RGB tuples. Agents get saturated colours, places muted ones, and pure white is
reserved for speech bubbles, so a pixel's colour says what is drawn there (the tests rely
on it).
"""
from __future__ import annotations

import colorsys
import re
from functools import lru_cache

from village.world import World

Colour = tuple[int, int, int]

BUBBLE: Colour = (255, 255, 255)
BUBBLE_EDGE: Colour = (20, 20, 20)
WALL: Colour = (58, 58, 68)
OFFMAP: Colour = (28, 28, 34)
LABEL: Colour = (25, 25, 30)
BAR_BG: Colour = (36, 38, 46)
BAR_FG: Colour = (235, 235, 240)
TIMELINE_BG: Colour = (70, 72, 84)
TIMELINE_FG: Colour = (240, 170, 60)
PANEL_BG: Colour = (245, 243, 236)

# Distinct, saturated agent colours (none close to the muted place colours or to white).
AGENT_COLOURS: tuple[Colour, ...] = (
    (214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 52, 190), (255, 127, 14),
    (23, 190, 207), (227, 60, 160), (140, 86, 75), (188, 189, 34), (0, 90, 80),
    (100, 60, 220), (200, 20, 90), (0, 140, 200), (120, 150, 0), (230, 90, 40),
    (90, 40, 120), (0, 170, 120), (170, 110, 0), (60, 60, 160), (180, 0, 0),
    (0, 110, 40), (200, 60, 230), (40, 40, 40), (0, 120, 130), (150, 30, 60),
)

# Muted area hues (H in degrees); rooms of an area vary its lightness.
_AREA_HUES = (35, 200, 110, 280, 15, 170, 60, 320, 240, 90, 140, 0, 260, 190, 50)


def agent_colour(agent_id: int) -> Colour:
    return AGENT_COLOURS[(agent_id - 1) % len(AGENT_COLOURS)]


def _hls(h: float, l: float, s: float) -> Colour:  # noqa: E741
    r, g, b = colorsys.hls_to_rgb(h / 360.0, l, s)
    return (int(r * 255), int(g * 255), int(b * 255))


@lru_cache(maxsize=64)
def _palette(names: tuple[str, ...], areas: tuple[str, ...]) -> dict[str, Colour]:
    out: dict[str, Colour] = {}
    for i, area in enumerate(areas):
        hue = _AREA_HUES[i % len(_AREA_HUES)]
        out[area] = _hls(hue, 0.80, 0.35)
        rooms = [n for n in names if n.startswith(area + ":") and n.count(":") == 1]
        for j, room in enumerate(rooms):
            out[room] = _hls(hue, 0.86 - 0.07 * (j % 3), 0.42)
    return out


def place_colours(world: World) -> dict[str, Colour]:
    """A muted colour for every area and room (objects use their room's, darker)."""
    names = tuple(sorted(world.places))
    areas = tuple(sorted(n for n, p in world.places.items() if p.kind == "area"))
    return _palette(names, areas)


def tile_colour(world: World, colours: dict[str, Colour], x: int, y: int) -> Colour:
    if not world.is_walkable(x, y):
        return WALL
    name = world.room_of(x, y) or world.area_of(x, y)
    c = colours.get(name or "", (200, 200, 200))
    if world.object_at(x, y):
        return shade(c, 0.8)
    return c


def shade(c: Colour, f: float) -> Colour:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


def text_on(c: Colour) -> Colour:
    """Black or white text, whichever reads better on ``c`` (never pure white: see BUBBLE)."""
    lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    return (15, 15, 15) if lum > 150 else (250, 250, 245)


def hex_colour(c: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


# Action keyword -> (symbol, ascii fallback). First match wins; keywords are word prefixes.
ICONS: tuple[tuple[str, str, str], ...] = (
    ("sleep|nap|bed|asleep", "☾", "z"),
    ("talk|chat|convers|gossip|discuss|meet", "☺", "@"),
    ("coffee|tea|espresso|latte|drink|cafe", "☕", "c"),
    ("breakfast|lunch|dinner|eat|meal|cook|food|snack|bak", "♨", "e"),
    ("draw|sketch|paint|illustrat|art", "✎", "d"),
    ("study|studi|revis|read|book|homework|learn|lectur|class|research|writ", "✍", "r"),
    ("garden|flower|plant|tulip|tree|weed|water", "✿", "g"),
    ("party|valentine|celebrat|decorat|invit", "♥", "v"),
    ("music|sing|piano|guitar", "♫", "m"),
    ("jog|run|exercis|walk|stroll|hike|commut|head", "⚑", "w"),
    ("work|serv|counter|shop|open|clos|clean|fix|sell|prepar|organi", "⚒", "k"),
    ("relax|rest|sofa|tv|watch|home", "⌂", "h"),
    ("mail|letter|email|phone|call", "✉", "@"),
    ("idle|wait", "·", "."),
)
DEFAULT_ICON = ("★", "*")
_ICON_RES = tuple((re.compile(r"\b(?:" + k + ")", re.I), s, a) for k, s, a in ICONS)


@lru_cache(maxsize=4096)
def action_icon(action: str | None, asleep: bool = False, talking: bool = False,
                ascii_only: bool = False) -> str:
    """The symbol for an action (a keyword map; the recorded ``emoji`` wins when present)."""
    if asleep:
        return "z" if ascii_only else "☾"
    if talking:
        return "@" if ascii_only else "☺"
    for rx, sym, asc in _ICON_RES:
        if action and rx.search(action):
            return asc if ascii_only else sym
    return DEFAULT_ICON[1] if ascii_only else DEFAULT_ICON[0]


def label_spot(world: World, name: str, need: float) -> tuple[int, int, int]:
    """Where to write a place's label: ``(x, y, run)``, a horizontal run of ``run`` tiles of
    the place starting at ``(x, y)``; the run nearest the place's middle row among those at
    least ``need`` tiles long (else the longest), so an L-shaped street gets its label on
    the street, not in the middle of its bounding box."""
    tiles = world.places[name].tiles
    runs: list[tuple[int, int, int]] = []
    for x, y in tiles:  # row-major: extend the current run or start one
        if runs and runs[-1][1] == y and runs[-1][0] + runs[-1][2] == x:
            rx, ry, n = runs[-1]
            runs[-1] = (rx, ry, n + 1)
        else:
            runs.append((x, y, 1))
    ys = [t[1] for t in tiles]
    xs = [t[0] for t in tiles]
    mid_y = (min(ys) + max(ys)) / 2
    mid_x = (min(xs) + max(xs)) / 2
    fits = [r for r in runs if r[2] >= need]
    if not fits:
        return max(runs, key=lambda r: (r[2], -abs(r[1] - mid_y)))
    return min(fits, key=lambda r: (abs(r[1] - mid_y), abs(r[0] + r[2] / 2 - mid_x), -r[2]))
