"""The world map: places, walkability, paths (correct, deterministic, fast), rendering."""

from __future__ import annotations

import random
import time as _time

import networkx as nx
import numpy as np
import pytest

from village.scenario import load_scenario
from village.world import MapError, NoPathError, UnknownPlaceError, World


@pytest.fixture(scope="module")
def demo():
    return load_scenario("demo")


@pytest.fixture(scope="module")
def world(demo):
    return World.from_scenario(demo)


def _adjacent(a, b):
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


def _check_path(world, start, path):
    prev = start
    for step in path:
        assert _adjacent(prev, step), (prev, step)
        assert world.is_walkable(*step), step
        prev = step


# ------------------------------------------------------------------ places
def test_shape_and_walkable(world):
    assert (world.width, world.height) == (30, 20)
    assert world.walkable.shape == (20, 30) and world.walkable.dtype == np.bool_
    assert not world.walkable[0, 0] and world.walkable[8, 1]  # [y, x]
    assert world.is_walkable(1, 8) and not world.is_walkable(0, 0)
    assert not world.is_walkable(-1, 5) and not world.is_walkable(30, 5)


def test_every_home_has_tiles(demo, world):
    for r in demo.residents:
        tiles = world.tiles_of(r.home)
        assert tiles and all(world.is_walkable(*t) for t in tiles)
        assert world.is_walkable(*r.start)
        assert world.area_of(*r.start) == r.home.split(":")[0]


def test_place_hierarchy(world):
    bed = "Moreno house:bedroom:bed"
    assert world.places[bed].kind == "object"
    assert world.places[bed].parent == "Moreno house:bedroom"
    assert world.places["Moreno house:bedroom"].kind == "room"
    assert world.places["Moreno house:bedroom"].parent == "Moreno house"
    assert world.places["Moreno house"].kind == "area" and world.places["Moreno house"].parent is None
    (x, y) = world.tiles_of(bed)[0]
    assert world.place_at(x, y) == bed
    assert world.room_of(x, y) == "Moreno house:bedroom"
    assert world.area_of(x, y) == "Moreno house"
    assert world.object_at(x, y) == bed
    assert world.place_at(0, 0) is None and world.area_of(0, 0) is None
    assert world.place_at(5, 8) == "Main Street" and world.room_of(5, 8) is None
    # An area's tiles are all its rooms' tiles.
    area = set(world.tiles_of("Moreno house"))
    rooms = set().union(*(world.tiles_of(r) for r in world.children("Moreno house")))
    assert area == rooms
    assert "Moreno house:bedroom:bed" in world.children("Moreno house:bedroom")


def test_membership_helpers(demo, world):
    assert world.place_contains("Moreno house", (28, 1))
    assert world.place_contains("Moreno house:bedroom", [28, 1])
    assert not world.place_contains("Hobbs Cafe", (28, 1))
    assert world.tiles_set("Hobbs Cafe") == frozenset(world.tiles_of("Hobbs Cafe"))
    assert world.destination_at(28, 1) == "Moreno house:bedroom"  # not the bed object
    assert world.destination_at(20, 8) == "Main Street"
    assert world.destination_at(0, 0) is None
    for r in demo.residents:
        assert world.start_tile(r) == r.start
    assert world.start_tile({"home": "Johnson Park"}) == world.tiles_of("Johnson Park")[0]


def test_tiles_are_row_major(world):
    for place in world.places.values():
        assert list(place.tiles) == sorted(place.tiles, key=lambda t: (t[1], t[0]))


def test_destinations_are_real_places(world):
    dests = world.destinations()
    assert dests == sorted(dests) and len(dests) == len(set(dests))
    assert {"Hobbs Cafe", "Hobbs Cafe:counter", "Johnson Park", "Main Street"} <= set(dests)
    for d in dests:
        assert d in world.places and world.places[d].kind in ("area", "room")
        assert world.tiles_of(d)
    assert set(world.areas()) == {d for d in dests if ":" not in d}


def test_unknown_place(world):
    with pytest.raises(UnknownPlaceError) as info:
        world.tiles_of("Moon")
    assert "Moon" in str(info.value) and "Hobbs Cafe" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_lookup(world):
    assert world.lookup("Hobbs Cafe") == "Hobbs Cafe"
    assert world.lookup(" hobbs cafe : COUNTER ") == "Hobbs Cafe:counter"
    assert world.lookup("Moon") is None


# ------------------------------------------------------------------ paths
def test_paths_between_all_destinations(demo, world):
    starts = [r.start for r in demo.residents]
    for start in starts:
        for dest in world.destinations():
            path = world.path(start, dest)
            _check_path(world, start, path)
            goal_tiles = set(world.tiles_of(dest))
            if start in goal_tiles:
                assert path == []
            else:
                assert path[-1] in goal_tiles
                assert start not in path
                # Shortest: compare with networkx from the start to the nearest goal tile.
                lengths = nx.single_source_shortest_path_length(world.graph, start)
                assert len(path) == min(lengths[t] for t in goal_tiles if t in lengths)
                assert world.path_length(start, dest) == len(path)


def test_path_to_tile(world):
    path = world.path((1, 1), (27, 6))
    _check_path(world, (1, 1), path)
    assert path[-1] == (27, 6)
    assert len(path) == nx.shortest_path_length(world.graph, (1, 1), (27, 6))
    assert world.path((1, 1), (1, 1)) == []
    assert world.path((1, 1), [2, 1]) == [(2, 1)]


def test_path_to_object(world):
    path = world.path((5, 8), "Hobbs Cafe:counter:coffee machine")
    assert path[-1] == world.tiles_of("Hobbs Cafe:counter:coffee machine")[0]


def test_path_errors(world):
    with pytest.raises(NoPathError):
        world.path((0, 0), "Hobbs Cafe")  # start is a wall
    with pytest.raises(NoPathError):
        world.path((1, 1), (0, 0))  # goal is a wall
    with pytest.raises(UnknownPlaceError):
        world.path((1, 1), "Moon")
    with pytest.raises(TypeError):
        world.path((1, 1), 42)


def test_unreachable_path_raises():
    w = World({"grid": "a#b", "legend": {"a": "A", "#": "wall", "b": "B"}})
    with pytest.raises(NoPathError, match="no walkable path"):
        w.path((0, 0), "B")
    assert not w.reachable((0, 0), "B") and w.reachable((0, 0), "A")
    assert w.component_of(0, 0) != w.component_of(2, 0) and w.component_of(1, 0) == -1


def test_paths_are_deterministic(demo):
    a, b = World.from_scenario(demo), World.from_scenario(demo)
    for dest in a.destinations():
        assert a.path((1, 8), dest) == b.path((1, 8), dest)
    # Cached and uncached answers agree.
    assert a.path((1, 8), "Johnson Park") == World.from_scenario(demo).path((1, 8), "Johnson Park")


def test_graph(world):
    g = world.graph
    assert g.number_of_nodes() == int(world.walkable.sum())
    for u, v in g.edges:
        assert _adjacent(u, v)
    assert nx.is_connected(g)


def test_path_cache_is_bounded(demo):
    w = World.from_scenario(demo, path_cache_size=3)
    for t in w.tiles_of("Main Street")[:10]:
        w.path((1, 1), t)
    assert len(w._cache) == 3


def test_pathfinding_speed_on_100x100():
    rng = random.Random(7)
    size = 100
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            if x in (0, size - 1) or y in (0, size - 1):
                row.append("#")
            elif x % 10 == 5 and y % 10 != 0:  # long walls with gaps every 10 rows
                row.append("#")
            elif rng.random() < 0.08:
                row.append("#")
            else:
                row.append("abcdefghij"[(y // 10)] if x < 5 else ".")
        rows.append("".join(row))
    legend = {"#": "wall", ".": "Open"} | {c: f"Zone {c}" for c in "abcdefghij"}
    legend = {k: v for k, v in legend.items() if any(k in r for r in rows)}
    w = World({"grid": "\n".join(rows), "legend": legend})
    starts = [t for t in w.tiles_of("Open") if w.reachable(t, "Open")]
    starts = rng.sample(starts, 500)
    goals = [g for g in w.destinations() if w.reachable(starts[0], g)]
    assert len(goals) >= 5
    t0 = _time.perf_counter()
    n = 0
    for _ in range(4):
        for s in starts:
            for g in goals[:3]:
                if w.reachable(s, g):
                    p = w.path(s, g)
                    n += 1
    elapsed = _time.perf_counter() - t0
    _check_path(w, s, p)
    assert n >= 3000
    assert n / elapsed > 2000, f"{n / elapsed:.0f} paths/s"


# ------------------------------------------------------------------ geometry and display
def test_within_is_euclidean_nearest_first(world):
    tiles = world.within(5, 8, 2)
    assert tiles[0] == (5, 8)
    assert all(world.distance((5, 8), t) <= 2 for t in tiles)
    assert (7, 8) in tiles and (7, 9) not in tiles  # a disc, not a square
    d = [world.distance((5, 8), t) for t in tiles]
    assert d == sorted(d)
    assert world.within(0, 0, 0) == [(0, 0)]
    assert all(world.in_bounds(*t) for t in world.within(0, 0, 5))


def test_distance():
    assert World.distance((0, 0), (3, 4)) == 5.0


def test_render_ascii(demo, world):
    plain = world.render_ascii()
    assert plain.splitlines() == world.rows
    positions = {r.name: r.start for r in demo.residents}
    text = world.render_ascii(positions)
    lines = text.splitlines()
    grid = lines[: world.height]
    assert all(len(line) == world.width for line in grid)
    marks = {}
    for line in lines[world.height:]:
        mark, rest = line.split(" = ", 1)
        marks[rest.split(" at ")[0]] = mark
    assert set(marks) == set(positions) and len(set(marks.values())) == len(marks)
    for name, (x, y) in positions.items():
        assert grid[y][x] == marks[name]
    # Two agents on one tile show as '*'.
    assert world.render_ascii({"Ann": (5, 8), "Bob": (5, 8)}).splitlines()[8][5] == "*"


def test_world_validates_its_map():
    with pytest.raises(MapError, match="row 1"):
        World({"grid": "..\n.", "legend": {".": "A"}})
    with pytest.raises(MapError, match="not in map.legend"):
        World({"grid": ".x", "legend": {".": "A"}})
    with pytest.raises(MapError, match="empty"):
        World({"grid": "", "legend": {}})
