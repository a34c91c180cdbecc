"""The day plan's example answer is made from each resident's own routine."""
from __future__ import annotations

import json

import jsonschema
import pytest

from agents.plan import routine_example
from agents.prompting import load_prompt
from village.scenario import load_scenario
from village.world import World


@pytest.mark.parametrize("scenario", ["demo", "neighbours", "valentines"])
def test_every_resident_gets_a_valid_example_from_their_routine(scenario: str) -> None:
    sc = load_scenario(scenario)
    places = World.from_scenario(sc).destinations()
    schema = dict(load_prompt("plan_day").schema)
    item = dict(schema["properties"]["activities"]["items"])
    item["properties"] = {**item["properties"], "place": {"enum": places}}
    for r in sc.residents:
        ex = json.loads(routine_example(r.routine, r.name, r.home, places, 7, 21))
        hours = [a["start_hour"] for a in ex["activities"]]
        assert len(hours) >= 3 and hours == sorted(set(hours)) and 7 <= hours[0] and hours[-1] <= 21
        for a in ex["activities"]:
            jsonschema.validate(a, item)


def test_the_example_follows_the_routine_words_places_and_hours() -> None:
    places = ["Hobbs Cafe", "Hobbs Cafe:counter", "Main Street", "Moreno house",
              "Moreno house:kitchen", "The Rose and Crown Pub"]
    routine = ("Tom wakes at 6:30, has breakfast in the Moreno house kitchen, walks along Main "
               "Street to Hobbs Cafe and opens it at 8:00. He works at the counter until he "
               "closes at 18:00, has a beer at The Rose and Crown Pub and goes to bed at 22:00.")
    ex = json.loads(routine_example(routine, "Tom Moreno", "Moreno house", places, 7, 21))
    got = [(a["start_hour"], a["place"]) for a in ex["activities"]]
    assert got[0] == (7, "Moreno house:kitchen")
    assert (8, "Hobbs Cafe") in got and (18, "The Rose and Crown Pub") in got
    assert any(a["activity"].startswith("works at the counter") for a in ex["activities"])
    assert not any("wake" in a["activity"] or "bed" in a["activity"] for a in ex["activities"])


def test_a_routine_without_usable_clauses_still_gives_a_day_at_home() -> None:
    ex = json.loads(routine_example("", "Ann Lee", "Lee house", ["Lee house"], 8, 20))
    assert [a["place"] for a in ex["activities"]] == ["Lee house"] * 3
