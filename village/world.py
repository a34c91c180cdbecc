"""The tile map of a scenario: places, walkability and paths.

Coordinates are ``(x, y)`` tiles: ``x`` is the column (0 at the left), ``y`` the
row (0 at the top). Arrays such as :attr:`World.walkable` are indexed ``[y, x]``.

Places form a hierarchy area → room → object and are named by their full path:
``"Area"``, ``"Area:room"``, ``"Area:room:object"``. Agents may only target names
from :meth:`World.destinations`, so a plan can never name a place that does not
exist (a failure mode of earlier systems).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only; scenario.py imports this module
    import networkx as nx

    from village.scenario import MapSpec, Scenario

Tile = tuple[int, int]
PlaceKind = Literal["area", "room", "object"]

WALL = "wall"
SEP = ":"

# Neighbour order for every BFS; fixed so that paths are reproducible.
_NEIGHBOURS: tuple[Tile, ...] = ((0, -1), (-1, 0), (1, 0), (0, 1))  # up, left, right, down


class MapError(ValueError):
    """A map that cannot be built; carries the field path so the loader can say where."""

    def __init__(self, path: str, problem: str, expected: str) -> None:
        self.path = path
        self.problem = problem
        self.expected = expected
        super().__init__(f"{path}: {problem} (expected {expected})")


class UnknownPlaceError(KeyError):
    """A place name that the world does not have (a KeyError so `in`-style code can catch it)."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(name)

    def __str__(self) -> str:
        shown = ", ".join(self.known[:20]) + (", ..." if len(self.known) > 20 else "")
        return f"unknown place {self.name!r} (expected one of: {shown})"


class NoPathError(ValueError):
    """No walkable path between two points; raised instead of returning an empty path."""


@dataclass(frozen=True)
class Place:
    """A named region of the map; ``tiles`` are sorted row-major (by y, then x)."""

    name: str
    kind: PlaceKind
    parent: str | None
    tiles: tuple[Tile, ...]

    @property
    def short_name(self) -> str:
        """The last part of the name, e.g. ``"bed"`` for ``"Lin house:bedroom:bed"``."""
        return self.name.rsplit(SEP, 1)[-1]


def split_place(name: str) -> list[str]:
    """Split a full place name into its parts, rejecting empty or padded parts."""
    parts = name.split(SEP)
    for part in parts:
        if not part or part != part.strip():
            raise ValueError(f"bad place name {name!r}")
    return parts


def grid_rows(grid: str | Sequence[str]) -> list[str]:
    """The grid's rows: leading/trailing blank lines dropped (TOML multi-line strings add them)."""
    rows = list(grid) if not isinstance(grid, str) else grid.split("\n")
    rows = [r[:-1] if r.endswith("\r") else r for r in rows]
    while rows and rows[0] == "":
        rows.pop(0)
    while rows and rows[-1] == "":
        rows.pop()
    return rows


def _attr(obj: Any, key: str, default: Any = None) -> Any:
    """Read a field from a pydantic model or a plain dict, so World needs no scenario import."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


class World:
    """The walkable tile map with its named places and cached shortest paths."""

    def __init__(self, map_spec: "MapSpec | Mapping[str, Any]", *, path_cache_size: int = 512) -> None:
        rows = grid_rows(_attr(map_spec, "grid", ""))
        legend: Mapping[str, str] = dict(_attr(map_spec, "legend", {}) or {})
        objects = list(_attr(map_spec, "objects", []) or [])

        if not rows:
            raise MapError("map.grid", "the grid is empty", "at least one row of tiles")
        width = len(rows[0])
        if width == 0:
            raise MapError("map.grid", "row 0 is empty", "every row to have at least one tile")
        for y, row in enumerate(rows):
            if len(row) != width:
                raise MapError(
                    "map.grid",
                    f"row {y} is {len(row)} tiles wide but row 0 is {width} ({row!r})",
                    f"every row to be {width} characters wide",
                )

        for key, value in legend.items():
            if len(key) != 1:
                raise MapError(f"map.legend.{key!r}", f"key {key!r} is not a single character",
                               "one grid character per legend key")
            if value == WALL:
                continue
            if value.strip().lower() == WALL:
                raise MapError(f"map.legend.{key!r}", f"{value!r} is not a wall nor a valid place",
                               f"exactly {WALL!r} for walls")
            try:
                parts = split_place(value)
            except ValueError:
                raise MapError(f"map.legend.{key!r}", f"bad place name {value!r}",
                               "'wall', 'Area' or 'Area:room' with non-empty parts") from None
            if len(parts) > 2:
                raise MapError(f"map.legend.{key!r}", f"{value!r} has {len(parts)} levels",
                               "'wall', 'Area' or 'Area:room' (objects go in [[map.objects]])")
            if parts[0].lower() == WALL:
                raise MapError(f"map.legend.{key!r}", f"area name {parts[0]!r} is reserved",
                               "a different area name")

        used: set[str] = set()
        for y, row in enumerate(rows):
            for x, ch in enumerate(row):
                if ch not in legend:
                    known = ", ".join(repr(k) for k in sorted(legend)) or "none defined"
                    raise MapError("map.grid", f"row {y}, column {x}: character {ch!r} is not in map.legend",
                                   f"one of: {known}")
                used.add(ch)
        for key in legend:
            if key not in used:
                raise MapError(f"map.legend.{key!r}", f"{key!r} ({legend[key]}) appears nowhere in map.grid",
                               "every legend character to be used")

        self.width: int = width
        self.height: int = len(rows)
        self.rows: list[str] = rows
        self.legend: dict[str, str] = dict(legend)
        self.walkable: np.ndarray = np.array(
            [[legend[ch] != WALL for ch in row] for row in rows], dtype=bool
        )
        self.walkable.setflags(write=False)

        # Place tiles, collected row-major so each Place.tiles is sorted.
        tiles: dict[str, list[Tile]] = {}
        kinds: dict[str, PlaceKind] = {}
        area_grid: list[list[str | None]] = [[None] * width for _ in range(self.height)]
        room_grid: list[list[str | None]] = [[None] * width for _ in range(self.height)]
        for y, row in enumerate(rows):
            for x, ch in enumerate(row):
                value = legend[ch]
                if value == WALL:
                    continue
                parts = value.split(SEP)
                area = parts[0]
                tiles.setdefault(area, []).append((x, y))
                kinds[area] = "area"
                area_grid[y][x] = area
                if len(parts) == 2:
                    tiles.setdefault(value, []).append((x, y))
                    kinds[value] = "room"
                    room_grid[y][x] = value

        object_grid: list[list[str | None]] = [[None] * width for _ in range(self.height)]
        for i, obj in enumerate(objects):
            where = f"map.objects[{i}]"
            name = _attr(obj, "name")
            room = _attr(obj, "place")
            at = _attr(obj, "at")
            try:
                split_place(name)
                if SEP in name:
                    raise ValueError
            except (ValueError, AttributeError):
                raise MapError(f"{where}.name", f"bad object name {name!r}",
                               "a non-empty name without ':' or surrounding spaces") from None
            if kinds.get(room) != "room":
                rooms = sorted(p for p, k in kinds.items() if k == "room")
                problem = (f"{room!r} is an area, not a room" if kinds.get(room) == "area"
                           else f"unknown room {room!r}")
                raise MapError(f"{where}.place", problem, "one of: " + (", ".join(rooms) or "no rooms defined"))
            x, y = at
            if not (0 <= x < width and 0 <= y < self.height):
                raise MapError(f"{where}.at", f"tile [{x}, {y}] is outside the {width}x{self.height} map",
                               f"x in 0..{width - 1}, y in 0..{self.height - 1}")
            if room_grid[y][x] != room:
                actual = room_grid[y][x] or area_grid[y][x] or "a wall"
                raise MapError(f"{where}.at", f"tile [{x}, {y}] is in {actual}, not in {room}",
                               f"a tile of {room}")
            full = f"{room}{SEP}{name}"
            if full in kinds:
                raise MapError(f"{where}.name", f"duplicate object {full!r}", "unique object names per room")
            if object_grid[y][x] is not None:
                raise MapError(f"{where}.at", f"tile [{x}, {y}] already holds {object_grid[y][x]}",
                               "one object per tile")
            object_grid[y][x] = full
            tiles[full] = [(x, y)]
            kinds[full] = "object"

        self.places: dict[str, Place] = {}
        for name in sorted(tiles):
            parent = name.rsplit(SEP, 1)[0] if SEP in name else None
            self.places[name] = Place(name=name, kind=kinds[name], parent=parent, tiles=tuple(tiles[name]))
        self._area_grid = area_grid
        self._room_grid = room_grid
        self._object_grid = object_grid
        self._destinations = sorted(n for n, p in self.places.items() if p.kind != "object")
        self._casefold = {n.casefold(): n for n in self.places}
        # Flat walkable list for the pure-Python BFS (much faster than numpy scalar indexing).
        self._walk_flat: list[bool] = self.walkable.ravel().tolist()
        self._cache: OrderedDict[Any, tuple[list[int], list[int]]] = OrderedDict()
        self._cache_size = path_cache_size
        self._components: list[int] | None = None
        self._tile_sets: dict[str, frozenset[Tile]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_scenario(cls, scenario: "Scenario", **kwargs: Any) -> "World":
        """Build the world of a loaded scenario."""
        return cls(scenario.map, **kwargs)

    # ------------------------------------------------------------------ places
    def in_bounds(self, x: int, y: int) -> bool:
        """Whether (x, y) is on the map."""
        return 0 <= x < self.width and 0 <= y < self.height

    def is_walkable(self, x: int, y: int) -> bool:
        """Whether an agent may stand on (x, y); off-map tiles are not walkable."""
        return self.in_bounds(x, y) and self._walk_flat[y * self.width + x]

    def place_at(self, x: int, y: int) -> str | None:
        """The deepest place at a tile (object > room > area), or None for walls / off-map."""
        if not self.in_bounds(x, y):
            return None
        return self._object_grid[y][x] or self._room_grid[y][x] or self._area_grid[y][x]

    def area_of(self, x: int, y: int) -> str | None:
        """The area a tile belongs to, or None."""
        return self._area_grid[y][x] if self.in_bounds(x, y) else None

    def room_of(self, x: int, y: int) -> str | None:
        """The full name of the room a tile belongs to (``"Area:room"``), or None."""
        return self._room_grid[y][x] if self.in_bounds(x, y) else None

    def object_at(self, x: int, y: int) -> str | None:
        """The full name of the object on a tile, or None."""
        return self._object_grid[y][x] if self.in_bounds(x, y) else None

    def place(self, name: str) -> Place:
        """The Place with this full name; UnknownPlaceError lists the valid names."""
        try:
            return self.places[name]
        except KeyError:
            raise UnknownPlaceError(name, self._destinations) from None

    def tiles_of(self, place: str) -> list[Tile]:
        """All tiles of a place, row-major."""
        return list(self.place(place).tiles)

    def tiles_set(self, place: str) -> frozenset[Tile]:
        """The tiles of a place as a (cached) set, for fast membership tests each step."""
        hit = self._tile_sets.get(place)
        if hit is None:
            hit = self._tile_sets[place] = frozenset(self.place(place).tiles)
        return hit

    def place_contains(self, place: str, tile: Tile) -> bool:
        """Whether a tile lies in a place (an area contains its rooms' and objects' tiles)."""
        return (int(tile[0]), int(tile[1])) in self.tiles_set(place)

    def destination_at(self, x: int, y: int) -> str | None:
        """The deepest destination (room, else area) at a tile: a valid target for plans."""
        return self.room_of(x, y) or self.area_of(x, y)

    def start_tile(self, resident: Any) -> Tile:
        """A resident's start tile: its ``start`` if given, else the first tile of its home."""
        start = _attr(resident, "start")
        if start is not None:
            return (int(start[0]), int(start[1]))
        return self.place(_attr(resident, "home")).tiles[0]

    def destinations(self) -> list[str]:
        """Names a plan or action may target: every area and room, sorted."""
        return list(self._destinations)

    def areas(self) -> list[str]:
        """All area names, sorted."""
        return [n for n in self._destinations if self.places[n].kind == "area"]

    def children(self, place: str) -> list[str]:
        """Full names of the places directly inside a place (rooms of an area, objects of a room)."""
        self.place(place)
        return [n for n, p in self.places.items() if p.parent == place]

    def lookup(self, name: str) -> str | None:
        """Canonical place name for ``name`` (exact, else case/space-insensitive), or None.

        Lets callers map a model's answer onto a real place without accepting free text.
        """
        if name in self.places:
            return name
        key = SEP.join(part.strip() for part in name.strip().split(SEP)).casefold()
        return self._casefold.get(key)

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def distance(a: Tile, b: Tile) -> float:
        """Euclidean distance between two tiles (the metric :meth:`within` uses)."""
        return math.hypot(a[0] - b[0], a[1] - b[1])

    def within(self, x: int, y: int, radius: float) -> list[Tile]:
        """On-map tiles within Euclidean ``radius`` of (x, y), nearest first (ties row-major).

        Euclidean (a disc), not Chebyshev (a square): "nearest first" perception then
        agrees with :meth:`distance`. Walls are included; callers filter if needed.
        """
        r = int(math.floor(radius))
        r2 = radius * radius
        out: list[tuple[float, int, int]] = []
        for ty in range(max(0, y - r), min(self.height, y + r + 1)):
            dy = ty - y
            for tx in range(max(0, x - r), min(self.width, x + r + 1)):
                dx = tx - x
                d2 = dx * dx + dy * dy
                if d2 <= r2:
                    out.append((d2, ty, tx))
        out.sort()
        return [(tx, ty) for _, ty, tx in out]

    # ------------------------------------------------------------------ graph and paths
    @cached_property
    def graph(self) -> "nx.Graph":
        """networkx Graph of walkable tiles, 4-neighbour edges (built on first use)."""
        import networkx as nx

        g = nx.Graph()
        for y in range(self.height):
            for x in range(self.width):
                if self._walk_flat[y * self.width + x]:
                    g.add_node((x, y))
                    if x + 1 < self.width and self._walk_flat[y * self.width + x + 1]:
                        g.add_edge((x, y), (x + 1, y))
                    if y + 1 < self.height and self._walk_flat[(y + 1) * self.width + x]:
                        g.add_edge((x, y), (x, y + 1))
        return g

    def _goal_key(self, goal: str | Tile) -> Any:
        """Cache key for a goal: the place name, or the tile as an (x, y) tuple."""
        if isinstance(goal, str):
            return goal
        x, y = self._as_tile(goal, "goal")
        if not self.is_walkable(x, y):
            raise NoPathError(f"goal tile {(x, y)} is not walkable")
        return (x, y)

    def _sources(self, key: Any) -> list[int]:
        """Flat indices of a goal's tiles, row-major (the BFS seeds)."""
        if isinstance(key, str):
            return [y * self.width + x for x, y in self.place(key).tiles]
        return [key[1] * self.width + key[0]]

    def _as_tile(self, t: Any, what: str) -> Tile:
        try:
            x, y = t
            return int(x), int(y)
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be an (x, y) tile or a place name, got {t!r}") from None

    def _field(self, goal: str | Tile) -> tuple[list[int], list[int]]:
        """Multi-source BFS from the goal's tiles: (steps to goal, next tile) per flat index.

        One BFS answers every start at once, and it is cached per goal (LRU), so the
        thousands of path requests per second an agent crowd makes are mostly lookups.
        """
        key = self._goal_key(goal)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        sources = self._sources(key)
        w, h, walk = self.width, self.height, self._walk_flat
        n = w * h
        dist = [-1] * n
        nxt = [-1] * n
        queue: deque[int] = deque()
        for s in sources:
            if dist[s] == -1:
                dist[s] = 0
                nxt[s] = s
                queue.append(s)
        while queue:
            cur = queue.popleft()
            cx, cy = cur % w, cur // w
            d = dist[cur] + 1
            for dx, dy in _NEIGHBOURS:
                nx_, ny_ = cx + dx, cy + dy
                if 0 <= nx_ < w and 0 <= ny_ < h:
                    j = ny_ * w + nx_
                    if dist[j] == -1 and walk[j]:
                        dist[j] = d
                        nxt[j] = cur
                        queue.append(j)
        result = (dist, nxt)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def path(self, start: Tile, goal: str | Tile) -> list[Tile]:
        """Shortest walkable path from ``start`` to a tile or to the nearest tile of a place.

        Excludes ``start``, includes the goal tile; ``[]`` if already there. Ties between
        equally short paths are broken deterministically (BFS neighbour order up, left,
        right, down; goal tiles seeded row-major). Raises NoPathError if unreachable.
        """
        sx, sy = self._as_tile(start, "start")
        if not self.is_walkable(sx, sy):
            raise NoPathError(f"start tile {(sx, sy)} is not walkable")
        dist, nxt = self._field(goal)
        w = self.width
        i = sy * w + sx
        if dist[i] < 0:
            where = self.place_at(sx, sy) or "a wall"
            raise NoPathError(f"no walkable path from {(sx, sy)} ({where}) to {goal!r}")
        out: list[Tile] = []
        while dist[i] > 0:
            i = nxt[i]
            out.append((i % w, i // w))
        return out

    def path_length(self, start: Tile, goal: str | Tile) -> int:
        """Number of steps on the shortest path (0 if already there); NoPathError if none."""
        sx, sy = self._as_tile(start, "start")
        if not self.is_walkable(sx, sy):
            raise NoPathError(f"start tile {(sx, sy)} is not walkable")
        d = self._field(goal)[0][sy * self.width + sx]
        if d < 0:
            raise NoPathError(f"no walkable path from {(sx, sy)} to {goal!r}")
        return d

    def reachable(self, start: Tile, goal: str | Tile) -> bool:
        """Whether a walkable path exists."""
        try:
            self.path_length(start, goal)
        except NoPathError:
            return False
        return True

    def component_of(self, x: int, y: int) -> int:
        """Id of the walkable connected component of a tile (-1 for walls/off-map)."""
        if self._components is None:
            self._components = self._label_components()
        return self._components[y * self.width + x] if self.in_bounds(x, y) else -1

    def _label_components(self) -> list[int]:
        """Label walkable 4-connected components, ids in row-major order of first tile."""
        w, h, walk = self.width, self.height, self._walk_flat
        comp = [-1] * (w * h)
        label = 0
        for start in range(w * h):
            if not walk[start] or comp[start] != -1:
                continue
            comp[start] = label
            stack = [start]
            while stack:
                cur = stack.pop()
                cx, cy = cur % w, cur // w
                for dx, dy in _NEIGHBOURS:
                    nx_, ny_ = cx + dx, cy + dy
                    if 0 <= nx_ < w and 0 <= ny_ < h:
                        j = ny_ * w + nx_
                        if walk[j] and comp[j] == -1:
                            comp[j] = label
                            stack.append(j)
            label += 1
        return comp

    # ------------------------------------------------------------------ display
    def render_ascii(self, positions: Mapping[str, Tile] | None = None) -> str:
        """The grid as text with each agent drawn as one initial, plus a key of who is where.

        One character per tile keeps the map aligned, so clashing initials fall back to
        another letter of the name; a tile with several agents shows ``*``.
        """
        canvas = [list(row) for row in self.rows]
        key_lines: list[str] = []
        if positions:
            taken: dict[str, str] = {}
            at_tile: dict[Tile, list[str]] = {}
            for name, (x, y) in positions.items():
                mark = next(
                    (c for c in [ch.upper() for ch in name if ch.isalnum()] + list("0123456789")
                     if c not in taken),
                    "?",
                )
                taken[mark] = name
                at_tile.setdefault((int(x), int(y)), []).append(mark)
                key_lines.append(f"{mark} = {name} at ({x}, {y}) in {self.place_at(x, y) or 'nowhere'}")
            for (x, y), marks in at_tile.items():
                if self.in_bounds(x, y):
                    canvas[y][x] = marks[0] if len(marks) == 1 else "*"
        text = "\n".join("".join(r) for r in canvas)
        return text + ("\n" + "\n".join(key_lines) if key_lines else "")

    def __repr__(self) -> str:
        return f"World({self.width}x{self.height}, {len(self.places)} places)"
