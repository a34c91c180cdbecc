"""Scenario loading: the demo loads, and every kind of bad input is one clear line."""

from __future__ import annotations

import random
from datetime import datetime, time
from pathlib import Path

import pytest

from village.scenario import (
    REPO_SCENARIOS,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    parse_scenario,
)

FIXTURES = Path(__file__).parent / "fixtures" / "scenarios"
TINY = (FIXTURES / "tiny.toml").read_text()


def _error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def _assert_one_line(err: ScenarioError, filename: str, field: str, *fragments: str) -> str:
    msg = str(err)
    assert "\n" not in msg, msg
    assert filename in msg, msg
    assert field in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def _mutated(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    assert old in TINY, old
    p = tmp_path / name
    p.write_text(TINY.replace(old, new, 1))
    return p


# ------------------------------------------------------------------ the demo
def test_demo_loads_by_name():
    sc = load_scenario("demo")
    assert isinstance(sc, Scenario)
    assert sc.name == "demo" == sc.scenario.name
    assert sc.start == datetime(2023, 2, 13, 7, 0)
    assert sc.seconds_per_step == 10
    assert sc.seed == 42
    assert len(sc.residents) == 4
    assert len({r.home for r in sc.residents}) == 2
    assert sc.source_path == (REPO_SCENARIOS / "demo.toml").resolve()
    assert sc.source_text == (REPO_SCENARIOS / "demo.toml").read_text()


def test_demo_content_matches_brief():
    sc = load_scenario("demo")
    world = sc.build_world()
    assert "Hobbs Cafe" in world.places and "Johnson Park" in world.places
    assert world.places["Johnson Park"].kind == "area"
    homes = [r.home for r in sc.residents]
    assert max(homes.count(h) for h in homes) >= 2  # a shared home
    assert any(p.kind == "object" and p.short_name == "bed" for p in world.places.values())
    for r in sc.residents:
        assert time(6, 30) <= r.wake <= time(7, 30)
        assert r.background and r.routine and r.currently and r.traits
    assert len(sc.whispers) == 1 and len(sc.facts) == 1
    fact = sc.facts[0]
    assert fact.place == "Hobbs Cafe"
    assert fact.start == datetime(2023, 2, 14, 17) and fact.end == datetime(2023, 2, 14, 19)
    # The fact is seeded as a memory of exactly one resident (the cafe owner).
    knowers = [r for r in sc.residents if any("party" in m.lower() for m in r.memories)]
    assert len(knowers) == 1
    assert world.width >= 25 and world.height >= 15


def test_demo_round_trips_from_source_text():
    sc = load_scenario("demo")
    again = parse_scenario(sc.source_text, "recorded")
    assert again.model_dump() == sc.model_dump()
    assert again.source_path is None


def test_default_start_is_first_tile_of_home():
    sc = parse_scenario(TINY)
    ann, bob = sc.residents
    world = sc.build_world()
    assert ann.start == world.tiles_of("Ann house")[0] == (1, 1)
    assert bob.start == (4, 1)
    assert ann.wake == ann.wake_time() == time(7) and ann.sleep == ann.sleep_time() == time(22)
    assert (ann.vision_radius, ann.attention_bandwidth, ann.retention) == (4, 3, 5)


def test_datetime_literals_and_times_accepted():
    text = TINY.replace('start = "2023-02-13T07:00:00"', "start = 2023-02-13T07:00:00").replace(
        'age = 30', 'age = 30\nwake = 06:45:00\nsleep = "23:15"'
    )
    sc = parse_scenario(text)
    assert sc.start == datetime(2023, 2, 13, 7)
    assert sc.residents[0].wake == time(6, 45) and sc.residents[0].sleep == time(23, 15)


# ------------------------------------------------------------------ resolution
def test_list_scenarios_includes_demo():
    assert "demo" in list_scenarios()


def test_load_folder_and_file(tmp_path):
    sc = load_scenario(FIXTURES / "folder_scenario")
    assert sc.name == "folder"
    assert load_scenario(str(FIXTURES / "tiny.toml")).name == "tiny"


def test_bare_name_prefers_cwd_scenarios(tmp_path, monkeypatch):
    (tmp_path / "scenarios" / "mine").mkdir(parents=True)
    (tmp_path / "scenarios" / "mine" / "scenario.toml").write_text(TINY)
    (tmp_path / "scenarios" / "demo.toml").write_text(TINY)  # shadows the repository's demo
    monkeypatch.chdir(tmp_path)
    assert load_scenario("mine").name == "tiny"
    assert load_scenario("demo").name == "tiny"
    assert {"mine", "demo"} <= set(list_scenarios())


def test_unknown_name_lists_available():
    with pytest.raises(ScenarioError) as info:
        load_scenario("nosuchtown")
    msg = str(info.value)
    assert "\n" not in msg and "nosuchtown" in msg and "demo" in msg


def test_missing_file_and_empty_folder(tmp_path):
    _assert_one_line(_error(tmp_path / "nope.toml"), "nope.toml", "file not found")
    _assert_one_line(_error(tmp_path), str(tmp_path), "scenario.toml")


def test_not_utf8(tmp_path):
    p = tmp_path / "latin.toml"
    p.write_bytes(TINY.replace("Ann", "Ann\xe9").encode("latin-1"))
    _assert_one_line(_error(p), "latin.toml", "UTF-8")


# ------------------------------------------------------------------ bad scenarios from the brief
def test_missing_field(tmp_path):
    p = _mutated(tmp_path, "age = 40\n", "")
    _assert_one_line(_error(p), "bad.toml", "residents[1].age", "missing", "expected")


def test_missing_section(tmp_path):
    p = tmp_path / "nomap.toml"
    p.write_text(TINY.split("[map]")[0] + "[[residents]]\nname='A'\nage=1\nhome='x'\n")
    _assert_one_line(_error(p), "nomap.toml", "map", "missing")


def test_unknown_place_as_home(tmp_path):
    p = _mutated(tmp_path, 'home = "Bob house"', 'home = "Moon"')
    msg = _assert_one_line(_error(p), "bad.toml", "residents[1].home", "'Moon'")
    assert "Ann house" in msg and "Bob house" in msg  # lists the valid places


def test_duplicate_resident_name(tmp_path):
    p = _mutated(tmp_path, 'name = "Bob"', 'name = "Ann"')
    _assert_one_line(_error(p), "bad.toml", "residents[1].name", "duplicate")


def test_start_on_wall(tmp_path):
    p = _mutated(tmp_path, "age = 40\n", "age = 40\nstart = [0, 0]\n")
    _assert_one_line(_error(p), "bad.toml", "residents[1].start", "wall")


def test_start_out_of_bounds(tmp_path):
    p = _mutated(tmp_path, "age = 40\n", "age = 40\nstart = [70, 1]\n")
    _assert_one_line(_error(p), "bad.toml", "residents[1].start", "outside")


def test_start_wrong_shape(tmp_path):
    p = _mutated(tmp_path, "age = 40\n", "age = 40\nstart = [1, 2, 3]\n")
    _assert_one_line(_error(p), "bad.toml", "residents[1].start", "[x, y]")


def test_malformed_toml():
    err = _error(FIXTURES / "malformed.toml")
    _assert_one_line(err, "malformed.toml", "line 11, column 7", "invalid TOML", "age = = 30")


def test_malformed_toml_at_end(tmp_path):
    p = tmp_path / "cut.toml"
    p.write_text('[scenario]\nname = "x')
    _assert_one_line(_error(p), "cut.toml", "line 2, column 10", "invalid TOML")


def test_ragged_grid():
    err = _error(FIXTURES / "ragged.toml")
    _assert_one_line(err, "ragged.toml", "map.grid", "row 2")


def test_unknown_legend_char(tmp_path):
    p = _mutated(tmp_path, "#aa.bb#\n#######", "#aa.bx#\n#######")
    _assert_one_line(_error(p), "bad.toml", "map.grid", "'x'", "row 2, column 5")


def test_wrong_type(tmp_path):
    p = _mutated(tmp_path, "age = 30", 'age = "old"')
    _assert_one_line(_error(p), "bad.toml", "residents[0].age", "wrong type", "integer")


def test_bool_is_not_an_integer(tmp_path):
    p = _mutated(tmp_path, "age = 30", "age = true")
    _assert_one_line(_error(p), "bad.toml", "residents[0].age", "wrong type")


def test_unreachable_home():
    err = _error(FIXTURES / "unreachable.toml")
    _assert_one_line(err, "unreachable.toml", "residents[1].home", "Bob house", "cannot be reached")


def test_typo_key(tmp_path):
    p = _mutated(tmp_path, "age = 30", "agee = 30")
    # The misspelt key is reported (not the 'missing age' it causes), with a suggestion.
    _assert_one_line(_error(p), "bad.toml", "residents[0].agee", "unknown key 'agee'", "did you mean 'age'")


def test_typo_table_name(tmp_path):
    p = _mutated(tmp_path, "[[residents]]", "[[resident]]")
    _assert_one_line(_error(p), "bad.toml", "resident", "did you mean 'residents'")


def test_extra_key(tmp_path):
    p = _mutated(tmp_path, "age = 30", "age = 30\nfavourite_colour = 'blue'")
    _assert_one_line(_error(p), "bad.toml", "residents[0].favourite_colour", "unknown key", "routine")


def test_extra_key_did_you_mean(tmp_path):
    p = _mutated(tmp_path, 'start = "2023', 'seconds_per_stp = 5\nstart = "2023')
    _assert_one_line(_error(p), "bad.toml", "scenario.seconds_per_stp", "did you mean 'seconds_per_step'")


def test_extra_top_level_table(tmp_path):
    p = tmp_path / "extra.toml"
    p.write_text(TINY + '\n[weather]\nrain = true\n')
    _assert_one_line(_error(p), "extra.toml", "weather", "unknown key")


# ------------------------------------------------------------------ further semantic checks
@pytest.mark.parametrize(
    "old,new,field,fragment",
    [
        ("age = 30", "age = 131", "residents[0].age", "too large"),
        ("age = 30", "age = -1", "residents[0].age", "too small"),
        ('start = "2023', 'seconds_per_step = 0\nstart = "2023', "scenario.seconds_per_step", "too small"),
        ('start = "2023', 'seconds_per_step = 3601\nstart = "2023', "scenario.seconds_per_step", "too large"),
        ("age = 30", "age = 30\nvision_radius = 500", "residents[0].vision_radius", "too large"),
        ("age = 30", "age = 30\nattention_bandwidth = 0", "residents[0].attention_bandwidth", "too small"),
        ("age = 30", "age = 30\nretention = -1", "residents[0].retention", "too small"),
        ('start = "2023-02-13T07:00:00"', 'start = "Monday morning"', "scenario.start", "date-time"),
        ('start = "2023-02-13T07:00:00"', 'start = "2023-02-13T07:00:00+01:00"', "scenario.start", "time zone"),
        ("age = 30", 'age = 30\nwake = "25:00"', "residents[0].wake", "time of day"),
        ("age = 30", 'age = 30\nwake = "08:00"\nsleep = "08:00"', "residents[0].sleep", "wake"),
        ("age = 30", 'age = 30\nwake = "08:00"\nsleep = "01:00"', "residents[0].sleep", "not after"),
        ("age = 30", "age = 30\ntraits = 'kind'", "residents[0].traits", "wrong type"),
        ("age = 30", "age = 30\ntraits = ['kind', 3]", "residents[0].traits[1]", "wrong type"),
        ("age = 30", "age = 30\nmemories = ['']", "residents[0].memories[0]", "empty"),
        ('name = "Ann"', 'name = "  "', "residents[0].name", "empty"),
        ("age = 30", "age = 30\nrelationships = { Carl = 'friend' }", "residents[0].relationships", "'Carl'"),
        ("age = 30", "age = 30\nrelationships = { Ann = 'self' }", "residents[0].relationships", "themself"),
        ('"." = "Street"', '"." = "Street:a:b"', "map.legend.'.'", "levels"),
        ('"." = "Street"', '"." = "Wall"', "map.legend.'.'", "wall"),
        ('"." = "Street"', '"." = "Street:"', "map.legend.'.'", "bad place name"),
        ('"#" = "wall"', '"#" = "wall"\n"z" = "Zoo"', "map.legend.'z'", "appears nowhere"),
        ('"#" = "wall"', '"##" = "wall"', "map.legend.'##'", "single character"),
        ("at = [1, 1]", "at = [4, 1]", "map.objects[0].at", "not in Ann house:kitchen"),
        ("at = [1, 1]", "at = [40, 1]", "map.objects[0].at", "outside"),
        ('place = "Ann house:kitchen"', 'place = "Ann house"', "map.objects[0].place", "area, not a room"),
        ('name = "bed"', 'name = "b:ed"', "map.objects[0].name", "':'"),
        ('home = "Bob house"', 'home = "Ann house:kitchen:bed"', "residents[1].home", "unknown place"),
    ],
)
def test_semantic_errors(tmp_path, old, new, field, fragment):
    _assert_one_line(_error(_mutated(tmp_path, old, new)), "bad.toml", field, fragment)


def test_no_residents(tmp_path):
    p = tmp_path / "empty.toml"
    p.write_text("residents = []\n" + TINY.split("[[residents]]")[0])
    _assert_one_line(_error(p), "empty.toml", "residents", "no residents")


def test_empty_grid(tmp_path):
    p = _mutated(tmp_path, TINY[TINY.index('grid = """'):TINY.index("[map.legend]")], 'grid = ""\n')
    _assert_one_line(_error(p), "bad.toml", "map.grid", "empty")


def test_grid_as_array_of_rows(tmp_path):
    block = TINY[TINY.index('grid = """'):TINY.index("[map.legend]")]
    p = _mutated(tmp_path, block, 'grid = ["#######", "#aa.bb#", "#aa.bb#", "#######"]\n')
    assert load_scenario(p).build_world().height == 4


def test_duplicate_object(tmp_path):
    obj = '[[map.objects]]\nname = "bed"\nplace = "Ann house:kitchen"\nat = [2, 2]\n\n[[residents]]'
    p = _mutated(tmp_path, "[[residents]]", obj)
    _assert_one_line(_error(p), "bad.toml", "map.objects[1].name", "duplicate")


def test_whispers_and_facts(tmp_path):
    ok = TINY + (
        '\n[[whispers]]\nat = "2023-02-13T08:00:00"\nresident = "Ann"\ntext = "Ann wants a party"\n'
        '\n[[facts]]\nname = "party"\nkeywords = ["party"]\nplace = "Street"\n'
        'start = "2023-02-14T17:00:00"\nend = "2023-02-14T19:00:00"\n'
    )
    sc = parse_scenario(ok)
    assert sc.whispers[0].at == datetime(2023, 2, 13, 8) and sc.facts[0].keywords == ["party"]

    cases = [
        ('resident = "Ann"', 'resident = "Zed"', "whispers[0].resident", "'Zed'"),
        ('at = "2023-02-13T08:00:00"', 'at = "2023-02-12T08:00:00"', "whispers[0].at", "before"),
        ('text = "Ann wants a party"', 'txt = "x"', "whispers[0]", "text"),
        ('place = "Street"', 'place = "Mars"', "facts[0].place", "'Mars'"),
        ('keywords = ["party"]', "keywords = []", "facts[0].keywords", "items"),
        ('end = "2023-02-14T19:00:00"', 'end = "2023-02-14T16:00:00"', "facts[0].end", "before"),
    ]
    for old, new, field, fragment in cases:
        p = tmp_path / "wf.toml"
        p.write_text(ok.replace(old, new, 1))
        _assert_one_line(_error(p), "wf.toml", field, fragment)


def test_start_cut_off_from_home(tmp_path):
    grid = TINY[TINY.index('grid = """'):TINY.index("[map.legend]")]
    new = 'grid = """\n#########\n#aa.bb#c#\n#aa.bb#c#\n#########\n"""\n'
    p = _mutated(tmp_path, grid, new)
    p.write_text(p.read_text().replace('"b" = "Bob house"', '"b" = "Bob house"\n"c" = "Cellar"'))
    err = _error(p)
    _assert_one_line(err, "bad.toml", "map.grid", "Cellar", "cannot be reached")


def test_parse_scenario_source_name():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("[scenario", "inline.toml")
    assert str(info.value).startswith("inline.toml: line 1")
    with pytest.raises(ScenarioError) as info:
        parse_scenario("")
    assert str(info.value).startswith("<string>: ")


def test_error_attributes(tmp_path):
    err = _error(_mutated(tmp_path, 'home = "Bob house"', 'home = "Moon"'))
    assert isinstance(err, ValueError)
    assert err.path == "residents[1].home" and "Moon" in err.problem and err.expected
    assert str(err).startswith(f"{err.source}: residents[1].home: unknown place 'Moon'")


def test_random_corruption_never_leaks_a_traceback(tmp_path):
    """Deleting, duplicating or swapping bits of the demo gives a scenario or one ScenarioError line."""
    text = (REPO_SCENARIOS / "demo.toml").read_text()
    rng = random.Random(1234)
    p = tmp_path / "fuzz.toml"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        t = text
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(t))
            j = min(len(t), i + rng.randint(1, 12))
            op = rng.random()
            if op < 0.4:
                t = t[:i] + t[j:]
            elif op < 0.7:
                t = t[:i] + t[i:j] + t[i:j] + t[j:]
            else:
                t = t[:i] + rng.choice(['"', "[", "]", "=", "\n", "#", "0", "-1", "x", "{", ","]) + t[i:]
        p.write_text(t)
        try:
            load_scenario(p)
            outcomes["ok"] += 1
        except ScenarioError as e:
            assert "\n" not in str(e) and "fuzz.toml" in str(e)
            outcomes["error"] += 1
    assert outcomes["error"] > 100


def test_docs_example_is_valid():
    """The complete example in docs/scenarios.md must load (keeps the docs honest)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text()
    block = doc.split("## A complete small example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    sc = parse_scenario(block, "docs/scenarios.md")
    assert [r.name for r in sc.residents] == ["Ann Lee", "Bob Diaz"]
    assert sc.residents[1].start == (6, 2) and sc.residents[0].start == (1, 1)
    world = sc.build_world()
    assert world.path(sc.residents[0].start, "Bob house")[-1] in world.tiles_of("Bob house")
