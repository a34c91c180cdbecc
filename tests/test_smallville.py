"""`village import-smallville` on persona files written for this test in the released code's format."""
from __future__ import annotations

import json
import shutil
from datetime import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from village.cli import main
from village.scenario import load_scenario
from village.smallville import SmallvilleError, find_personas, import_smallville, parse_lifestyle
from village.world import World

FIX = Path(__file__).parent / "fixtures" / "smallville"
HISTORY = FIX / "agent_history_init.csv"


@pytest.fixture(scope="module")
def result():  # noqa: ANN201
    return import_smallville(FIX, history=HISTORY)


def test_residents_and_fields(result) -> None:  # noqa: ANN001
    sc = result.scenario
    assert result.residents == ["Ines Navarro", "Lucia Ferraro", "Noor Haidari", "Otto Brandt",
                                "Peter Lindgren", "Sara Lindgren", "Tobias Weber"]
    ines = sc.resident("Ines Navarro")
    assert ines.age == 33 and ines.traits == ["friendly", "outgoing", "hospitable"]
    assert ines.background.startswith("Ines Navarro runs Hobbs Cafe")
    assert "Valentine's Day party" in ines.currently
    assert ines.routine.startswith("Ines Navarro opens Hobbs Cafe at 8am") and "goes to bed" in ines.routine
    assert (ines.wake, ines.sleep) == (time(6, 0), time(23, 0))
    assert (ines.vision_radius, ines.attention_bandwidth, ines.retention) == (8, 8, 8)
    assert ines.memories == ["Ines Navarro knows Tobias Weber from the cafe",
                             "Ines Navarro is friends with Sara Lindgren"]  # from the history CSV
    assert sc.resident("Peter Lindgren").wake == time(6, 30)
    otto = sc.resident("Otto Brandt")
    assert otto.memories == ["Otto Brandt started building a model ship", "Otto Brandt misses the sea"]
    assert otto.vision_radius == 50 and otto.age == 30  # clamped / defaulted, and reported
    # place names of the released map rewritten to ours
    assert "The Willows Market" in sc.resident("Sara Lindgren").routine
    assert "and Pharmacy" not in sc.resident("Sara Lindgren").routine
    assert "Oak Hill College dorm" in sc.resident("Tobias Weber").background


def test_homes_on_our_map(result) -> None:  # noqa: ANN001
    sc = result.scenario
    world = World.from_scenario(sc)
    homes = {r.name: r.home for r in sc.residents}
    assert homes["Tobias Weber"].startswith("Oak Hill College dorm:room ")
    assert homes["Lucia Ferraro"].startswith("Oak Hill College dorm:room ")
    assert homes["Tobias Weber"] != homes["Lucia Ferraro"]
    assert homes["Noor Haidari"] == "Artists' loft"
    # households without a counterpart get one of the map's homes, renamed after them
    assert homes["Ines Navarro"] == "Ines Navarro's apartment"
    assert homes["Peter Lindgren"] == homes["Sara Lindgren"] == "Lindgren family's house"
    assert "Lindgren family's house:kitchen" in world.destinations()
    assert "Ines Navarro's apartment" in world.places
    assert result.homes["Lindgren family's house"] == "Lindgren family's house"
    # the map's public places and the facts it tracks come along
    assert {"Hobbs Cafe", "Johnson Park", "The Rose and Crown Pub"} <= set(world.areas())
    assert [f.name for f in sc.facts] == ["party", "candidacy"]


def test_report_of_what_could_not_be_mapped(result) -> None:  # noqa: ANN001
    un = "\n".join(result.unmapped)
    for expected in [
        "Broken Persona: scratch.json unreadable",
        "Lucia Ferraro: bedtime 02:00 is after midnight",
        "Noor Haidari: bedtime 00:00 is after midnight",
        "Otto Brandt: unknown field(s) favourite_colour",
        "Otto Brandt: simulation state curr_tile, curr_time dropped",
        "Otto Brandt: age 'sixty' is not an integer",
        "Otto Brandt: no wake time (07:00 used) or bedtime (22:00 used)",
        "Otto Brandt: mentions 'Giorgio Rossi's apartment'",
        "history: 'Nobody Here' is not among the imported personas",
        "model settings concept_forget",
        "relationships: scratch.json has none",
    ]:
        assert expected in un, expected
    ch = "\n".join(result.changed)
    assert "living area 'Lindgren family's house' → the map's 'Kowalski house', renamed" in ch
    assert "living area 'Dorm for Oak Hill College' → 'Oak Hill College dorm'" in ch
    assert "Otto Brandt: vision_r 80 clamped to 0..50" in ch
    assert "text: 'The Willows Market and Pharmacy' → 'The Willows Market'" in ch
    assert "Ines Navarro: room 'main room' is not on the map" in ch


def test_lifestyle_times() -> None:
    assert parse_lifestyle("X goes to bed around 11pm, awakes up around 6am.") == (time(6), time(23))
    assert parse_lifestyle("wakes up at 7:30 am and goes to sleep at 10:15 p.m.") == (time(7, 30), time(22, 15))
    assert parse_lifestyle("goes to bed around 12am") == (None, time(0))
    assert parse_lifestyle("whenever") == (None, None)


def test_one_persona_folder_and_no_history(tmp_path: Path) -> None:
    res = import_smallville(FIX / "personas" / "Ines Navarro", keep_facts=False, name="one")
    assert res.residents == ["Ines Navarro"] and res.scenario.facts == []
    assert res.scenario.resident("Ines Navarro").memories == []
    assert res.scenario.name == "one"
    with pytest.raises(SmallvilleError, match="no persona folders"):
        find_personas(tmp_path)


def test_households_outnumber_homes(tmp_path: Path) -> None:
    """More households than the map has homes: later ones share, and it is reported."""
    for i in range(16):
        d = tmp_path / "personas" / f"P{i}" / "bootstrap_memory"
        d.mkdir(parents=True)
        (d / "scratch.json").write_text(json.dumps({
            "name": f"Person Number{i}", "age": 30 + i, "innate": "kind",
            "lifestyle": "goes to bed around 10pm, awakes up around 7am",
            "living_area": f"the Ville:House {i}:bedroom"}))
    res = import_smallville(tmp_path, base="valentines")
    assert len(res.residents) == 16
    shared = [u for u in res.unmapped if "the map has no home left" in u]
    assert len(shared) == 16 - 14 and "share" in shared[0]  # valentines has 14 homes


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "sv.toml"
    r = CliRunner().invoke(main, ["import-smallville", str(FIX), "--out", str(out), "--history", str(HISTORY)])
    assert r.exit_code == 0, r.output
    assert "Imported 7 residents" in r.output and "Could not be mapped:" in r.output
    sc = load_scenario(out)
    assert len(sc.residents) == 7 and sc.name == "sv"
    r = CliRunner().invoke(main, ["import-smallville", str(FIX), "--out", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = CliRunner().invoke(main, ["import-smallville", str(tmp_path / "nope"), "--out", str(tmp_path / "x.toml")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = CliRunner().invoke(main, ["import-smallville", str(FIX), "--out", str(tmp_path / "y.toml"),
                                  "--map", "no-such-map"])
    assert r.exit_code == 2 and "unknown scenario" in r.output


def test_runs_in_the_simulation(tmp_path: Path) -> None:
    """The imported town runs (scripted test double, a few steps)."""
    from village import simulate

    src = tmp_path / "copy"
    shutil.copytree(FIX, src)
    res = import_smallville(src)
    path = tmp_path / "sv.toml"
    path.write_text(res.toml)
    model = simulate.build(str(path), simulate.RunOptions(llm="scripted", embedder="hash", cache=False,
                                                          out=tmp_path / "sv.db"))
    result = simulate.run(model, 5)
    assert result.steps == 5
