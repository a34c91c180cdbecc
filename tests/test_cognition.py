"""Each cognitive module with the scripted test double (fast; no real model)."""
from __future__ import annotations

import json
from pathlib import Path
from datetime import datetime, timedelta

import pytest

from agents.perceive import Event, EventIndex, visible_events
from agents.plan import actions_from_items, blocks_from_activities
from village import checkpoint as ckpt
from village.config import SimConfig
from tests.helpers import build_model, by_purpose, db, edited_scenario, scenario_text


# -- perception ----------------------------------------------------------------------------
def test_perception_radius_bandwidth_retention_and_area(tmp_path):
    model, _ = build_model(tmp_path, record=False)
    tom = model.agent_by_name["Tom Moreno"]
    tom.pos_xy = (20, 8)  # on Main Street
    area = model.world.area_of(20, 8)
    evs = [Event(f"P{i}", f"P{i} is standing", 20 + i, 8, area) for i in range(1, 8)]
    evs.append(Event("Far", "Far is standing", 20, 9, "Johnson Park"))  # other area
    tom.vision_radius, tom.attention_bandwidth = 4, 3
    seen = visible_events(tom, evs)
    assert [e.subject for e in seen] == ["P1", "P2", "P3"]  # nearest first, at most 3
    tom.recent_observations.extend(["P1 is standing", "P2 is standing"])
    seen = visible_events(tom, evs)
    assert [e.subject for e in seen] == ["P3"]  # retention skips what was just seen
    tom.vision_radius = 1
    tom.recent_observations.clear()
    assert [e.subject for e in visible_events(tom, evs)] == ["P1"]
    # the per-tile index the model uses sees exactly what a scan of every event sees
    for radius in (0, 1, 3, 4, 10):
        tom.vision_radius = radius
        assert visible_events(tom, EventIndex(evs)) == visible_events(tom, evs)


# -- planning ------------------------------------------------------------------------------
def test_day_plan_blocks_tile_the_day_without_gaps_or_overlaps():
    day = datetime(2023, 2, 13)
    wake, sleep = day.replace(hour=7), day.replace(hour=22)
    items = [{"start_hour": 12, "activity": "lunch", "place": "A"},
             {"start_hour": 3, "activity": "breakfast", "place": "B"},  # before wake: clipped
             {"start_hour": 12, "activity": "duplicate hour", "place": "C"},
             {"start_hour": 9, "activity": "work", "place": "D"}]
    blocks = blocks_from_activities(items, day, wake, sleep)
    assert [b.description for b in blocks] == ["breakfast", "work", "lunch"]
    assert blocks[0].start == wake and blocks[-1].end == sleep
    for a, b in zip(blocks, blocks[1:]):
        assert a.end == b.start


def test_actions_fill_the_window_exactly():
    t0 = datetime(2023, 2, 13, 9)
    acts = actions_from_items([{"minutes": 15, "action": "a", "place": "X"},
                               {"minutes": 10, "action": "b", "place": "X"}], t0,
                              t0 + timedelta(minutes=60))
    assert acts[0].start == t0 and acts[-1].end == t0 + timedelta(minutes=60)
    for a, b in zip(acts, acts[1:]):
        assert a.end == b.start
    acts = actions_from_items([{"minutes": 15, "action": "a", "place": "X"}] * 8, t0,
                              t0 + timedelta(minutes=30))
    assert len(acts) == 2 and acts[-1].end == t0 + timedelta(minutes=30)


def test_recorded_plan_is_decomposed_and_names_real_places(tmp_path):
    model, _ = build_model(tmp_path)
    for _ in range(60):
        model.step()
    conn = db(tmp_path / "run.db")
    places = set(model.world.destinations())
    rows = conn.execute("SELECT * FROM plans").fetchall()
    levels = {r["level"] for r in rows}
    assert {"day", "hour", "action"} <= levels
    assert all(r["place"] in places for r in rows)
    # every action belongs to an hour window that it tiles without gaps or overlaps
    for hour in conn.execute("SELECT * FROM plans WHERE level = 'hour'"):
        acts = conn.execute("SELECT start, end FROM plans WHERE parent_id = ? ORDER BY start",
                            (hour["id"],)).fetchall()
        assert acts and acts[0]["start"] == hour["start"] and acts[-1]["end"] == hour["end"]
        for a, b in zip(acts, acts[1:]):
            assert a["end"] == b["start"]
        parent = conn.execute("SELECT level FROM plans WHERE id = ?", (hour["parent_id"],)).fetchone()
        assert parent["level"] == "day"


def test_agents_walk_on_walkable_tiles_one_step_at_a_time(tmp_path):
    model, _ = build_model(tmp_path)
    for _ in range(120):
        model.step()
    conn = db(tmp_path / "run.db")
    for aid in range(1, len(model.residents) + 1):
        prev = None
        for r in conn.execute("SELECT step, x, y FROM agent_states WHERE agent_id = ? ORDER BY step",
                              (aid,)):
            assert model.world.is_walkable(r["x"], r["y"])
            if prev is not None and prev["step"] == r["step"] - 1:
                assert abs(prev["x"] - r["x"]) + abs(prev["y"] - r["y"]) <= 1
            prev = r


# -- conversation --------------------------------------------------------------------------
def names_of(req) -> tuple[str, str]:
    """The two participants of a `conversation` request, initiator first (its schema)."""
    return tuple(req.schema["properties"]["lines"]["items"]["properties"]["speaker"]["enum"])


def after(name: str, note: str = "We will meet at the cafe later") -> dict:
    return {"person": name, "note": note, "next_action": "walk to the cafe",
            "place": "Hobbs Cafe", "minutes": 15}


def dialogue(req, texts: list[str], notes: tuple[str, str] = ("We will meet at the cafe later",) * 2):
    a, b = names_of(req)
    return {"lines": [{"speaker": (a, b)[i % 2], "text": t} for i, t in enumerate(texts)],
            "after_a": after(a, notes[0]), "after_b": after(b, notes[1])}


def _chatty(lines: int = 3):
    counter = {"n": 0}

    def talk(req):
        counter["n"] += 1
        return dialogue(req, [f"this is line {i + 1} of talk {counter['n']}" for i in range(lines)])

    return by_purpose({"react": lambda r: {"decision": "talk", "reason": "friends"},
                       "converse": talk})


def test_conversation_ends_is_remembered_and_cools_down(tmp_path):
    cfg = SimConfig(cooldown_minutes=60, react_cooldown_minutes=1)
    model, _ = build_model(tmp_path, responder=_chatty(lines=3), config=cfg)
    for _ in range(200):
        model.step()
    conn = db(tmp_path / "run.db")
    convs = conn.execute("SELECT * FROM conversations ORDER BY id").fetchall()
    assert convs, "agents who meet and decide to talk must hold a conversation"
    c = convs[0]
    names = {r["id"]: r["name"] for r in conn.execute("SELECT id, name FROM agents")}
    assert c["utterances"] == 3 and c["ended_by"] == names[c["agent_a"]]  # who spoke last
    assert c["step_end"] == c["step_start"] + 2  # one line a step, as the replay shows them
    lines = conn.execute("SELECT * FROM utterances WHERE conversation_id = ? ORDER BY idx",
                         (c["id"],)).fetchall()
    assert [r["speaker_id"] for r in lines] == [c["agent_a"], c["agent_b"], c["agent_a"]]
    assert [r["step"] for r in lines] == [c["step_start"] + i for i in range(3)]
    # the whole dialogue and both notes come from one recorded call
    assert len({r["call_id"] for r in lines}) == 1 and lines[0]["call_id"]
    call = conn.execute("SELECT * FROM llm_calls WHERE id = ?", (lines[0]["call_id"],)).fetchone()
    assert call["purpose"] == "converse" and call["agent_id"] == c["agent_a"]
    assert conn.execute("SELECT count(*) FROM llm_calls WHERE purpose = 'converse'").fetchone()[0] \
        == len(convs)
    for aid in (c["agent_a"], c["agent_b"]):  # both remember it, and note what it means
        kinds = {r["kind"] for r in conn.execute(
            "SELECT kind FROM memories WHERE agent_id = ? AND step >= ?", (aid, c["step_start"]))}
        assert {"chat", "plan"} <= kinds
        # ... and re-plan: the note's next action follows the conversation
        acts = conn.execute("SELECT * FROM plans WHERE agent_id = ? AND step > ? AND level = 'action'"
                            " ORDER BY step LIMIT 1", (aid, c["step_start"])).fetchone()
        assert acts["description"] == "walk to the cafe" and acts["place"] == "Hobbs Cafe"
        assert acts["step"] == c["step_end"] + 1  # the step after its last line
    # the cool-down: the same pair does not talk again within 60 game minutes (360 steps)
    pairs = {}
    for cv in convs:
        key = frozenset((cv["agent_a"], cv["agent_b"]))
        if key in pairs:
            assert cv["step_start"] - pairs[key] >= 360
        pairs[key] = cv["step_start"]
    edges = conn.execute("SELECT * FROM social_edges WHERE kind = 'conversation'").fetchall()
    assert edges and max(e["conversations"] for e in edges) >= 1


def test_conversation_cap(tmp_path):
    cfg = SimConfig(max_utterances=3)
    model, _ = build_model(tmp_path, responder=_chatty(lines=4), config=cfg)
    for _ in range(100):
        model.step()
    conv = db(tmp_path / "run.db").execute("SELECT * FROM conversations").fetchone()
    assert conv["utterances"] == 3 and conv["ended_by"] == "cap (3 utterances)"


def test_a_dialogue_that_repeats_itself_or_an_earlier_talk_is_asked_again(tmp_path):
    """The `_fresh` guard: a line said before in the dialogue, or in an earlier conversation
    of the same pair (as either remembers it), is rejected and re-asked (recorded invalid)."""
    script = [
        ["Hello there, neighbour!", "Hello there, neighbour!"],  # repeats itself
        ["Good morning, how are you?", "Fine, thanks for asking."],
        ["Good morning, how are you?", "Fine, thanks for asking."],  # repeats their first talk
        ["Lovely weather for a walk today.", "Yes, I am off to the park."],
    ]
    asked: dict[frozenset, int] = {}

    def talk(req):
        pair = frozenset(names_of(req))
        n = asked[pair] = asked.get(pair, 0) + 1
        return dialogue(req, script[n - 1] if n <= len(script) else
                        [f"More news, part {n}?", f"Not today, sorry ({n})."])

    cfg = SimConfig(cooldown_minutes=0, react_cooldown_minutes=0)  # talk again when free
    model, _ = build_model(tmp_path, responder=by_purpose({
        "react": lambda r: {"decision": "talk", "reason": "friends"}, "converse": talk}), config=cfg)
    for _ in range(300):
        model.step()
        if max(asked.values(), default=0) >= 4:
            break
    conn = db(tmp_path / "run.db")
    calls = [c for c in conn.execute("SELECT c.*, u.text FROM llm_calls c LEFT JOIN utterances u"
                                     " ON u.call_id = c.id AND u.idx = 0"
                                     " WHERE c.purpose = 'converse' ORDER BY c.id")]
    pair = next(p for p, n in asked.items() if n >= 4)
    speakers = lambda c: frozenset(  # noqa: E731
        json.loads(c["schema"])["properties"]["lines"]["items"]["properties"]["speaker"]["enum"])
    mine = [c for c in calls if speakers(c) == pair][:4]
    assert [bool(c["invalid"]) for c in mine] == [True, False, True, False]
    assert "repeats an earlier line of the conversation" in mine[0]["invalid"]
    assert "repeats an earlier line of theirs" in mine[2]["invalid"]
    assert [c["text"] for c in mine] == [None, "Good morning, how are you?", None,
                                         "Lovely weather for a walk today."]


def test_speakers_must_take_turns_starting_with_the_initiator(tmp_path):
    from agents.converse import check, usable

    a, b = "Ann Lee", "Bob Diaz"
    ok = [{"speaker": a, "text": "Hi Bob!"}, {"speaker": b, "text": "Hi Ann!"}]
    assert check({"lines": ok}, a, b, set()) is None
    assert "take turns, Ann Lee first" in check({"lines": ok[::-1]}, a, b, set())
    assert "take turns" in check({"lines": [ok[0], ok[0] | {"text": "Again?"}]}, a, b, set())
    assert "theirs" in check({"lines": ok}, a, b, {"hi ann"})  # said in an earlier talk
    # a dialogue that stops making one after two lines is kept up to there
    looping = ok + [{"speaker": a, "text": "Hi Bob."}, {"speaker": b, "text": "Bye!"}]
    assert check({"lines": looping}, a, b, set()) is None
    assert usable(looping, a, b, set()) == (2, "line 3 repeats an earlier line of the conversation")


def test_a_looping_dialogue_is_cut_where_it_starts_repeating(tmp_path):
    def talk(req):
        return dialogue(req, ["Good morning, how are you?", "Fine, thanks for asking.",
                              "Good morning, how are you?", "Fine, thanks for asking."])

    model, _ = build_model(tmp_path, responder=by_purpose({
        "react": lambda r: {"decision": "talk", "reason": "friends"}, "converse": talk}))
    for _ in range(100):
        model.step()
    conn = db(tmp_path / "run.db")
    c = conn.execute("SELECT * FROM conversations ORDER BY id").fetchone()
    assert c["utterances"] == 2
    ev = conn.execute("SELECT description FROM events WHERE kind = 'conversation'"
                      " AND description LIKE '%cut after%'").fetchone()
    assert "cut after 2 of 4 lines: line 3 repeats" in ev["description"]


# -- reflection ----------------------------------------------------------------------------
def test_reflection_fires_at_threshold_with_existing_evidence(tmp_path):
    cfg = SimConfig(reflection_threshold=25, importance_batch=2)
    high = by_purpose({"importance": lambda r: {"ratings": [9] * int(
        r.messages[-1]["content"].split("these ")[1].split(" ")[0])}})
    model, _ = build_model(tmp_path, responder=high, config=cfg)
    for _ in range(300):
        model.step()
    conn = db(tmp_path / "run.db")
    refl = conn.execute("SELECT * FROM memories WHERE kind = 'reflection'").fetchall()
    assert refl, "summed importance over the threshold must trigger a reflection"
    ev = conn.execute("SELECT x.memory_id, x.evidence_id, e.id AS found FROM memory_evidence x"
                      " LEFT JOIN memories e ON e.id = x.evidence_id").fetchall()
    assert ev and all(r["found"] is not None for r in ev)
    assert {r["memory_id"] for r in ev} <= {r["id"] for r in refl}
    assert conn.execute("SELECT count(*) FROM llm_calls WHERE purpose = 'reflect'").fetchone()[0] >= 2


def test_no_reflection_below_threshold(tmp_path):
    low = by_purpose({"importance": lambda r: {"ratings": [1] * int(
        r.messages[-1]["content"].split("these ")[1].split(" ")[0])}})
    model, _ = build_model(tmp_path, responder=low)
    for _ in range(150):
        model.step()
    conn = db(tmp_path / "run.db")
    assert conn.execute("SELECT count(*) FROM llm_calls WHERE purpose = 'reflect'").fetchone()[0] == 0


# -- importance ---------------------------------------------------------------------------
def test_importance_is_rated_in_batches_and_wrong_counts_are_retried(tmp_path):
    bad_then_good = {"n": 0}

    def rate(req):
        bad_then_good["n"] += 1
        n = int(req.messages[-1]["content"].split("these ")[1].split(" ")[0])
        return {"ratings": [5] * (n + 1 if bad_then_good["n"] == 1 else n)}

    model, _ = build_model(tmp_path, responder=by_purpose({"importance": rate}))
    for _ in range(100):
        model.step()
    conn = db(tmp_path / "run.db")
    calls = conn.execute("SELECT * FROM llm_calls WHERE purpose = 'importance'").fetchall()
    mems = conn.execute("SELECT count(*) FROM memories WHERE call_id IS NOT NULL").fetchone()[0]
    assert mems > len(calls)  # batched: fewer calls than rated records
    assert any(c["invalid"] and "ratings" in c["invalid"] for c in calls)
    assert conn.execute("SELECT count(*) FROM memories WHERE importance NOT BETWEEN 1 AND 10").fetchone()[0] == 0


# -- whispers ------------------------------------------------------------------------------
def test_whisper_becomes_a_memory_at_its_time(tmp_path):
    text = scenario_text()
    sc = edited_scenario(text, 'at = "2023-02-13T12:00:00"', 'at = "2023-02-13T07:02:00"')
    model, _ = build_model(tmp_path, scenario=sc)
    for _ in range(15):
        model.step()
    conn = db(tmp_path / "run.db")
    w = conn.execute("SELECT m.*, s.game_time FROM memories m JOIN steps s ON s.step = m.step"
                     " WHERE kind = 'whisper'").fetchall()
    assert len(w) == 1 and w[0]["created"] == "2023-02-13T07:02:00"


# -- ablations -----------------------------------------------------------------------------
@pytest.mark.parametrize("module,purpose", [("reflection", "reflect"), ("planning", "plan")])
def test_ablation_removes_its_model_calls(tmp_path, module, purpose):
    cfg_full = SimConfig(reflection_threshold=20, importance_batch=2)
    cfg_abl = SimConfig(reflection_threshold=20, importance_batch=2, ablate=frozenset({module}))
    counts = []
    for i, cfg in enumerate((cfg_full, cfg_abl)):
        d = tmp_path / str(i)
        d.mkdir()
        model, backend = build_model(d, config=cfg, responder=by_purpose({"importance": lambda r: {
            "ratings": [8] * int(r.messages[-1]["content"].split("these ")[1].split(" ")[0])}}))
        for _ in range(150):
            model.step()
        counts.append(sum(1 for r in backend.calls if r.purpose == purpose))
    assert counts[0] > 0 and counts[1] == 0


def test_observation_ablation_records_no_observations(tmp_path):
    model, _ = build_model(tmp_path, config=SimConfig(ablate=frozenset({"observation"})))
    for _ in range(100):
        model.step()
    conn = db(tmp_path / "run.db")
    n = conn.execute("SELECT count(*) FROM memories WHERE kind = 'observation' AND step > 0").fetchone()[0]
    assert n == 0


def test_unknown_ablation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ablation 'memory'"):
        SimConfig(ablate=frozenset({"memory"}))


# -- traceability --------------------------------------------------------------------------
def test_every_call_and_retrieval_is_recorded(tmp_path):
    model, backend = build_model(tmp_path)
    for _ in range(80):
        model.step()
    conn = db(tmp_path / "run.db")
    n_calls = conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    assert n_calls == len(backend.calls) > 0
    row = conn.execute("SELECT * FROM llm_calls LIMIT 1").fetchone()
    assert json.loads(row["messages"]) and row["prompt_tokens"] > 0
    hits = conn.execute("SELECT h.*, m.id AS mid FROM retrieval_hits h LEFT JOIN memories m"
                        " ON m.id = h.memory_id").fetchall()
    assert hits and all(h["mid"] is not None for h in hits)


# -- news travels through conversation ------------------------------------------------------
PARTY_QUERY = """SELECT a.name, min(m.created) AS since FROM memories m JOIN agents a ON a.id = m.agent_id
WHERE m.description LIKE '%party%' GROUP BY a.name ORDER BY since"""  # as in docs/schema.md


def test_seeded_news_spreads_and_the_documented_query_finds_who_knows(tmp_path):
    def talk(req):
        a, b = names_of(req)
        tom_first = a == "Tom Moreno"  # only Tom knows of the party (his identity and memories)
        lines = ["Come to my Valentine's party at Hobbs Cafe!", "Sounds lovely, I will come."]
        return dialogue(req, lines if tom_first else [f"Hello {b}, nice day.", "Hi, it is indeed."],
                        notes=("I will go to the party",) * 2)

    responder = by_purpose({"react": lambda r: {"decision": "talk", "reason": "say hello"},
                            "converse": talk})
    model, _ = build_model(tmp_path, responder=responder)
    for _ in range(120):
        model.step()
    schema_doc = (Path(__file__).resolve().parent.parent / "docs" / "schema.md").read_text()
    assert "WHERE m.description LIKE '%party%' GROUP BY a.name ORDER BY since" in schema_doc
    rows = db(tmp_path / "run.db").execute(PARTY_QUERY).fetchall()
    knows = {r["name"]: r["since"] for r in rows}
    assert knows["Tom Moreno"] == "2023-02-13T07:00:00"  # seeded
    assert len(knows) >= 2  # someone heard it from Tom
    assert all(since > "2023-02-13T07:00:00" for name, since in knows.items() if name != "Tom Moreno")


# -- context budget ------------------------------------------------------------------------
def test_prompts_are_fitted_to_the_window_and_what_was_dropped_is_recorded(tmp_path):
    model, backend = build_model(tmp_path, context_window=700)
    for _ in range(200):
        model.step()
    conn = db(tmp_path / "run.db")
    rows = conn.execute("SELECT c.*, c.dropped FROM llm_calls c WHERE c.dropped IS NOT NULL").fetchall()
    assert rows, "a 700-token window must force dropping retrieved memories somewhere"
    for r in rows:
        dropped = json.loads(r["dropped"])
        assert dropped and all(isinstance(d, str) for d in dropped)
        for d in dropped:  # what was dropped is not in the prompt that was sent
            assert f"- {d}\n" not in json.loads(r["messages"])[-1]["content"]
    # every prompt that was sent fits the window with room for its answer
    for req in backend.calls:
        used = sum(backend.count_tokens(m["content"]) for m in req.messages)
        assert used + req.max_tokens <= 700 + 16 * len(req.messages)


def test_reflection_questions_fit_the_window_dropping_the_oldest_records(tmp_path):
    """Long chat transcripts among the recent records used to overflow reflect_questions."""
    from agents import reflect

    model, backend = build_model(tmp_path, context_window=900)
    a = model.residents[0]
    for i in range(40):
        a.remember(f"transcript {i}: " + "we talked about the weather and the party " * 12, "chat",
                   importance=5)
    model._loop.run_until_complete(reflect.reflect(a))
    asked = [r for r in backend.calls if "salient high-level questions" in r.messages[-1]["content"]]
    assert asked, "reflection asked its questions"
    sent = asked[0].messages[-1]["content"]
    assert "transcript 39:" in sent and "transcript 0:" not in sent  # newest kept, oldest dropped
    used = sum(backend.count_tokens(m["content"]) for m in asked[0].messages)
    assert used + asked[0].max_tokens <= 900 + 16 * len(asked[0].messages)
    model.finish()
    row = db(tmp_path / "run.db").execute(
        "SELECT dropped FROM llm_calls WHERE purpose = 'reflect' AND dropped IS NOT NULL "
        "ORDER BY id").fetchone()
    assert row is not None and any(d.startswith("transcript 0:") for d in json.loads(row["dropped"]))


# -- economy knobs (not in the paper; 0 turns each off) -----------------------------------
def _high_ratings(req):  # noqa: ANN001, ANN202
    return {"ratings": [9] * int(req.messages[-1]["content"].split("these ")[1].split(" ")[0])}


def _reflection_steps(path: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in db(path).execute("SELECT DISTINCT agent_id, step FROM memories WHERE kind = 'reflection'"
                              " ORDER BY agent_id, step"):
        out.setdefault(r["agent_id"], []).append(r["step"])
    return out


def _talk_starts(path: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for c in db(path).execute("SELECT * FROM conversations ORDER BY step_start"):
        for aid in (c["agent_a"], c["agent_b"]):
            out.setdefault(aid, []).append(c["step_start"])
    return out


def _spaced_runs(tmp_path: Path, knob: str, values: tuple[int, ...], steps: int, responder,
                 times, **config) -> dict[int, dict[int, list[int]]]:  # noqa: ANN001
    """One run per value of `knob` (minutes); in each, every agent's `times` (steps of what
    the knob spaces out) must be at least that far apart."""
    out = {}
    for v in values:
        d = tmp_path / str(v)
        d.mkdir()
        model, _ = build_model(d, responder=responder, config=SimConfig(**config, **{knob: v}))
        for _ in range(steps):
            model.step()
        out[v] = times(d / "run.db")
        gap_steps = v * 60 // model.seconds_per_step
        for agent_steps in out[v].values():
            assert all(b - a >= gap_steps for a, b in zip(agent_steps, agent_steps[1:])), (v, agent_steps)
    return out


def test_reflection_at_most_once_in_the_min_interval(tmp_path):
    runs = _spaced_runs(tmp_path, "reflection_min_minutes", (0, 20), 360,
                        by_purpose({"importance": _high_ratings}), _reflection_steps,
                        reflection_threshold=25, importance_batch=2)
    assert runs[20], "the first reflection is not delayed"
    # the interval is what spaced them: without it the same agents reflect more often
    assert sum(map(len, runs[0].values())) > sum(map(len, runs[20].values()))


def test_an_agent_does_not_talk_again_within_the_talk_gap(tmp_path):
    starts = _spaced_runs(tmp_path, "talk_gap_minutes", (0, 30), 600, _chatty(lines=2),
                          _talk_starts, cooldown_minutes=60, react_cooldown_minutes=1)
    assert starts[30], "agents still talk"
    closest = min(b - a for steps in starts[0].values() for a, b in zip(steps, steps[1:]))
    assert closest < 30 * 6  # without the gap some agent talks again within 30 min (10 s steps)


def test_the_talk_gap_survives_a_resume(tmp_path):
    cfg = SimConfig(cooldown_minutes=60, react_cooldown_minutes=1, talk_gap_minutes=30)
    model, _ = build_model(tmp_path, responder=_chatty(lines=2), config=cfg)
    for _ in range(400):
        model.step()
        if model.talked_at:
            break
    assert model.talked_at, "a conversation within 400 steps"
    before = dict(model.talked_at)
    state = json.loads(ckpt.dumps(model.checkpoint_state()))  # as stored
    model.talked_at = {}
    model.restore_state(state)
    assert model.talked_at == before
