"""The TUI inspector (`village inspect`), driven with Textual's ``App.run_test()`` on a run
recorded here with the scripted test double (reflections, conversations and plans on).

Every check compares what the inspector shows with the database read directly (or, for the
retrieval probe, with ``MemoryStream.retrieve`` itself). Snapshots of the main screens at
80×24 are SVG files under tests/snapshots/inspector/ (``VILLAGE_UPDATE_SNAPSHOTS=1`` rewrites
them; a mismatch leaves the new screen next to the test's tmp dir for a look)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static

from memory.persistence import stream_from_rows
from memory.retrieval import RetrievalWeights
from tests.helpers import build_model, by_purpose
from village.config import SimConfig
from village.inspector import InspectorApp
from village.inspector.screens.call import CallScreen
from village.inspector.screens.memory import MemoryScreen
from village.interview import embedder_for_recorded
from village.replay import ReplayReader

STEPS = 150
SIZE = (80, 24)
SNAPSHOTS = Path(__file__).parent / "snapshots" / "inspector"


# --------------------------------------------------------------------------- the recorded run
def _ratings(req):  # noqa: ANN001, ANN202
    """Memories about the party matter (9), the rest 2..7 (varied, deterministic)."""
    lines = re.findall(r"^\d+\. (.*)$", req.messages[-1]["content"], re.M)
    return {"ratings": [9 if "party" in ln.lower() else 2 + len(ln) % 6 for ln in lines]}


def _dialogue(req):  # noqa: ANN001, ANN202
    """One call writes the whole conversation (agents/prompts/conversation.toml)."""
    a, b = req.schema["properties"]["lines"]["items"]["properties"]["speaker"]["enum"]
    lines = ("Are you coming to the Valentine's Day party at Hobbs Cafe tomorrow?",
             "Yes, I will be there at five. Shall I bring flowers?",
             "Please do. See you there!")
    after = {"note": "We will meet at the cafe later", "next_action": "walk to the cafe",
             "place": "Hobbs Cafe", "minutes": 15}
    return {"lines": [{"speaker": (a, b)[i % 2], "text": t} for i, t in enumerate(lines)],
            "after_a": {"person": a, **after}, "after_b": {"person": b, **after}}


def _insights(req):  # noqa: ANN001, ANN202
    enum = req.schema["properties"]["insights"]["items"]["properties"]["because"]["items"]["enum"]
    return {"insights": [{"insight": "The Valentine's Day party at Hobbs Cafe is on everyone's mind",
                          "because": enum[:2]}]}


def responder():  # noqa: ANN201
    return by_purpose({
        "importance": _ratings,
        "react": lambda r: {"decision": "talk", "reason": "to invite them to the party"},
        "converse": _dialogue,
        "reflect": lambda r: (_insights(r) if "insights" in r.schema["properties"] else
                              {"questions": ["Who is coming to the party?", "What do they plan?",
                                             "Who talks to whom?"]}),
    })


def record(dirpath: Path, steps: int) -> tuple:
    model, backend = build_model(dirpath, responder=responder(),
                                 config=SimConfig(reflection_threshold=40, importance_batch=2,
                                                  cooldown_minutes=5, react_cooldown_minutes=1))
    for _ in range(steps):
        model.step()
    return model, backend


@pytest.fixture(scope="module")
def run_db(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inspector_run")
    model, _ = record(d, STEPS)
    model.recorder.finish_run("finished")
    model.recorder.close()
    path = d / "run.db"
    with sqlite3.connect(path) as conn:  # wall-clock columns vary between runs: fix them
        conn.execute("UPDATE llm_calls SET latency_ms = 1.0")
        conn.execute("UPDATE steps SET wall_time = 0, duration_ms = 0")
        conn.execute("UPDATE runs SET started_at = '2026-01-01T00:00:00', ended_at = '2026-01-01T00:01:00'")
    conn.close()
    return path


@pytest.fixture
def db_copy(run_db, tmp_path) -> Path:
    """A copy for tests that write (interviews)."""
    out = tmp_path / "run.db"
    shutil.copy(run_db, out)
    return out


def q(path: Path, sql: str, args=()) -> list[sqlite3.Row]:  # noqa: ANN001
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def rows_of(table: DataTable) -> list[tuple[str, list]]:
    out = []
    for i in range(table.row_count):
        key = table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value
        out.append((key, [str(c) for c in table.get_row_at(i)]))
    return out


def text_of(widget: Static) -> str:
    return str(widget.render())


async def settle(pilot, app) -> None:  # noqa: ANN001
    """Let workers finish and the screen refresh."""
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def press(pilot, app, *keys: str) -> None:  # noqa: ANN001
    """Press the keys, then let the app settle."""
    await pilot.press(*keys)
    await settle(pilot, app)


async def open_first_row(pilot, app, view_key: str, table_id: str) -> int:  # noqa: ANN001
    """Open a view by its key, then the first row of a table in it (Enter); the row's key."""
    await press(pilot, app, view_key)
    key = rows_of(app.query_one(table_id, DataTable))[0][0]
    await press(pilot, app, "enter")
    return int(key)


def app_for(path: Path, **kw) -> InspectorApp:  # noqa: ANN003
    return InspectorApp(ReplayReader(path), **kw)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


# --------------------------------------------------------------------------- the run is rich enough
def test_recorded_run_has_what_the_inspector_shows(run_db):
    kinds = {r[0] for r in q(run_db, "SELECT DISTINCT kind FROM memories")}
    assert {"observation", "reflection", "plan", "chat"} <= kinds
    assert q(run_db, "SELECT count(*) FROM memory_evidence")[0][0] > 0
    assert q(run_db, "SELECT count(*) FROM conversations")[0][0] > 0


# --------------------------------------------------------------------------- agent, memories
def test_selecting_an_agent_shows_its_memories(run_db):
    async def go():
        app = app_for(run_db, start=120)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "1")
            assert app.query_one("#views").active == "town"
            await press(pilot, app, "down", "down", "enter")  # the third agent, opened
            assert app.agent_id == 3 and app.query_one("#views").active == "agent"
            shown = rows_of(app.query_one("#mem-table", DataTable))
            want = q(run_db, "SELECT id, description FROM memories WHERE agent_id = 3 AND step <= 120"
                             " ORDER BY created DESC, id DESC")
            assert [int(k) for k, _ in shown] == [r["id"] for r in want]
            assert shown[0][1][-1].rstrip("…") in want[0]["description"]
            # ] selects the next agent: its memories replace them
            await press(pilot, app, "right_square_bracket")
            ids = {int(k) for k, _ in rows_of(app.query_one("#mem-table", DataTable))}
            assert app.agent_id == 4 and ids and all(i // 1_000_000 == 4 for i in ids)
    run(go())


def test_memory_filter_search_and_sort(run_db):
    async def go():
        app = app_for(run_db, agent=1)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            view = app.query_one("#memory-view")
            table = app.query_one("#mem-table", DataTable)
            view.set_filters(kind="reflection")
            await settle(pilot, app)
            refl = {r[0] for r in q(run_db, "SELECT id FROM memories WHERE agent_id = 1 AND kind = 'reflection'")}
            assert {int(k) for k, _ in rows_of(table)} == refl
            view.set_filters(kind=None, search="flat white")
            await settle(pilot, app)
            hits = {r[0] for r in q(run_db, "SELECT id FROM memories WHERE agent_id = 1"
                                            " AND description LIKE '%flat white%'")}
            assert hits and {int(k) for k, _ in rows_of(table)} == hits
            view.set_filters(kind=None, search="", sort="importance")
            await settle(pilot, app)
            imps = [int(c[2]) for _, c in rows_of(table)]
            assert imps == sorted(imps, reverse=True)
            # the keys: t cycles the type, / focuses the search box
            await press(pilot, app, "t")
            assert {c[1] for _, c in rows_of(table)} <= {"observation"}
            await pilot.press("slash")
            await pilot.pause()
            assert isinstance(app.focused, Input) and app.focused.id == "mem-search"
    run(go())


# --------------------------------------------------------------------------- retrieval probe
def test_retrieval_probe_matches_the_memory_stream(run_db):
    step, agent, query = 140, 1, "Valentine's Day party at Hobbs Cafe"

    async def go():
        app = app_for(run_db, start=step, agent=agent)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "3", "slash")
            assert app.focused.id == "probe-query"
            await pilot.press(*query)
            await press(pilot, app, "enter")
            view = app.query_one("#probe-view")
            return view.result, rows_of(app.query_one("#probe-table", DataTable))

    result, shown = run(go())
    # the same computation, done here: the stream rebuilt as of the step, the run's embedder
    with ReplayReader(run_db) as r:
        emb = embedder_for_recorded(r.run["embedder"], r.run["embedder_dim"])
        stream = stream_from_rows("Tom Moreno", r.run["embedder_dim"], r.memory_rows(agent, step))
        want = stream.retrieve(emb.embed([query])[0], r.game_time(step), k=10,
                               weights=RetrievalWeights(), touch=False)
    assert result is not None and len(result.hits) == len(want) == 10
    top, exp = result.hits[0], want[0]
    assert top.record.id == exp.record.id
    for part in ("recency", "importance", "relevance", "score"):
        assert getattr(top, part) == pytest.approx(getattr(exp, part), abs=1e-12)
    assert [h.record.id for h in result.hits] == [h.record.id for h in want]
    # the table shows the top result's three components and the total
    key, cells = shown[0]
    assert int(key) == exp.record.id
    assert cells[1:5] == [f"{exp.score:.3f}", f"{exp.recency:.3f}", f"{exp.importance:.3f}",
                          f"{exp.relevance:.3f}"]


def test_memory_rows_are_as_of_the_step(run_db):
    with ReplayReader(run_db) as r:
        rows = r.memory_rows(1, 60)
        assert rows and max(m.step for m in rows) <= 60
        for m in rows:
            assert m.last_accessed is None or m.last_accessed <= r.game_time(60)
        later = {m.id: m for m in r.memory_rows(1, STEPS)}
        # a record retrieved after step 60 has a later last access at the end than at 60
        moved = [m for m in rows if later[m.id].last_accessed != m.last_accessed]
        assert moved


def test_probe_uses_the_runs_retrieval_weights(db_copy):
    from village.inspector.probe import Probe

    with sqlite3.connect(db_copy) as conn:
        cfg = {"sim": {"weights": {"recency": 0.5, "importance": 3.0, "relevance": 2.0}}}
        conn.execute("UPDATE runs SET config = ?", (json.dumps(cfg),))
    conn.close()
    with ReplayReader(db_copy) as r:
        probe = Probe(r)
        assert probe.weights == RetrievalWeights.released_code()
        res = probe.run(1, 100, "the party", k=3)
        h = res.hits[0]
        assert h.score == pytest.approx(0.5 * h.recency + 3 * h.importance + 2 * h.relevance)


# --------------------------------------------------------------------------- reflections, plans, calls
def test_opening_a_reflection_lists_its_evidence(run_db):
    async def go():
        app = app_for(run_db, agent=1)
        async with app.run_test(size=SIZE) as pilot:
            key = await open_first_row(pilot, app, "r", "#refl-table")
            assert isinstance(app.screen, MemoryScreen) and app.screen.memory_id == key
            return key, rows_of(app.screen.query_one("#mem-evidence", DataTable))

    rid, ev = run(go())
    want = q(run_db, "SELECT e.id, e.description FROM memory_evidence x JOIN memories e"
                     " ON e.id = x.evidence_id WHERE x.memory_id = ? ORDER BY e.id", (rid,))
    assert want and [int(k) for k, _ in ev] == [r["id"] for r in want]
    for (_, cells), r in zip(ev, want):  # one line each, cut with … when long
        assert " ".join(r["description"].split()).startswith(cells[-1].rstrip("…"))


def test_a_record_shows_what_cites_it(run_db):
    cited = q(run_db, "SELECT evidence_id, count(*) n FROM memory_evidence GROUP BY evidence_id"
                      " ORDER BY n DESC, evidence_id LIMIT 1")[0]

    async def go():
        app = app_for(run_db, agent=cited["evidence_id"] // 1_000_000)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            app.open_memory(cited["evidence_id"])
            await settle(pilot, app)
            return rows_of(app.screen.query_one("#mem-cited", DataTable))

    rows = run(go())
    want = q(run_db, "SELECT memory_id FROM memory_evidence WHERE evidence_id = ?", (cited["evidence_id"],))
    assert sorted(int(k) for k, _ in rows) == sorted(r[0] for r in want)


def test_opening_a_model_call_shows_its_prompt(run_db):
    async def go():
        app = app_for(run_db)
        async with app.run_test(size=SIZE) as pilot:
            key = await open_first_row(pilot, app, "4", "#calls-table")
            assert isinstance(app.screen, CallScreen)
            return key, text_of(app.screen.query_one("#call-text", Static))

    cid, text = run(go())
    row = q(run_db, "SELECT * FROM llm_calls WHERE id = ?", (cid,))[0]
    assert row["step"] == q(run_db, "SELECT max(step) FROM llm_calls")[0][0]  # newest first
    for msg in json.loads(row["messages"]):
        for line in msg["content"].splitlines():
            assert line.strip() in text
    assert row["response"] in text and f"{row['prompt_tokens']} in" in text


def test_calls_filter_and_totals_by_purpose(run_db):
    async def go():
        app = app_for(run_db, agent=2)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "4")
            await press(pilot, app, "a", "t", "t")  # the selected agent; purpose: importance, then plan
            calls = rows_of(app.query_one("#calls-table", DataTable))
            totals = rows_of(app.query_one("#calls-totals", DataTable))
            return calls, totals

    calls, totals = run(go())
    want = q(run_db, "SELECT id FROM llm_calls WHERE agent_id = 2 AND purpose = 'plan'")
    assert {int(k) for k, _ in calls} == {r[0] for r in want}
    by_purpose_db = {r[0]: r[1] for r in q(run_db, "SELECT purpose, count(*) FROM llm_calls"
                                                   " WHERE agent_id = 2 GROUP BY purpose")}
    shown = {c[0]: int(c[1]) for _, c in totals if c[0] != "all"}
    assert shown == by_purpose_db


def test_plan_view_marks_the_action_in_force(run_db):
    async def go():
        app = app_for(run_db, start=100, agent=1)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "p")
            return rows_of(app.query_one("#plan-table", DataTable))

    rows = run(go())
    with ReplayReader(run_db) as r:
        plans = r.plans(1, 100)
    marked = {int(k) for k, c in rows if c[0] == "▶"}
    assert plans.action is not None and plans.action["id"] in marked
    assert {d["id"] for d in plans.day} <= {int(k) for k, _ in rows}


# --------------------------------------------------------------------------- timeline
def test_moving_the_timeline_changes_the_overview(run_db):
    def positions(step: int) -> dict[str, str]:
        rows = q(run_db, "SELECT a.name, s.x, s.y, s.place FROM agents a JOIN agent_states s"
                         " ON s.agent_id = a.id WHERE s.step = (SELECT max(step) FROM agent_states"
                         " WHERE agent_id = a.id AND step <= ?)", (step,))
        return {r["name"]: f"{r['x']},{r['y']}" for r in rows}

    a, b = 30, 90
    assert positions(a) != positions(b)

    async def go():
        app = app_for(run_db, start=a)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "1")
            seen = [{c[0]: c[1] for _, c in rows_of(app.query_one("#agents", DataTable))}]
            await press(pilot, app, "g", *str(b), "enter")  # go to a step
            seen.append({c[0]: c[1] for _, c in rows_of(app.query_one("#agents", DataTable))})
            assert app.step == b
            await press(pilot, app, "comma", "comma", "full_stop")  # back two, on one
            assert app.step == b - 1
            await press(pilot, app, "g", *"07:10", "enter")  # by game time
            step_at_time = app.step
            await press(pilot, app, "greater_than_sign")  # ten game minutes on
            return seen, step_at_time, app.step, text_of(app.query_one("#timeline"))

    seen, at_time, later, timeline = run(go())
    assert seen == [positions(a), positions(b)]
    with ReplayReader(run_db) as r:
        assert at_time == r.step_at("07:10")
        assert later == at_time + 600 // r.seconds_per_step
        assert f"step {later}" in timeline and r.clock(later) in timeline


# --------------------------------------------------------------------------- follow a live run
def test_follow_shows_steps_written_after_the_app_started(tmp_path):
    model, _ = record(tmp_path, 5)
    path = tmp_path / "run.db"

    async def go():
        app = InspectorApp(ReplayReader(path), follow=True, poll_s=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "1")
            assert app.step == 5
            await asyncio.to_thread(lambda: [model.step() for _ in range(25)])
            for _ in range(100):
                await pilot.pause(0.05)
                if app.step == 30:
                    break
            await settle(pilot, app)
            return (app.step, text_of(app.query_one("#timeline")),
                    {c[0]: c[1] for _, c in rows_of(app.query_one("#agents", DataTable))})

    step, timeline, shown = run(go())
    assert step == 30 and "step 30" in timeline and "following" in timeline
    rows = q(path, "SELECT a.name, s.x, s.y FROM agents a JOIN agent_states s ON s.agent_id = a.id"
                   " WHERE s.step = (SELECT max(step) FROM agent_states WHERE agent_id = a.id)")
    assert shown == {r["name"]: f"{r['x']},{r['y']}" for r in rows}
    model.recorder.close()


# --------------------------------------------------------------------------- interview, read-only
def test_interview_from_the_tui_is_recorded_and_changes_nothing_else(db_copy):
    before = {t: q(db_copy, f"SELECT count(*) FROM {t}")[0][0]
              for t in ("memories", "llm_calls", "retrievals", "steps")}

    async def go():
        app = app_for(db_copy, start=100, agent=2)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, app, "5", "slash")
            await press(pilot, app, *"Are you going to the party?", "enter")
            view = app.query_one("#interview-view")
            return view.last_answer, view.last_error, text_of(app.query_one("#ask-text", Static))

    answer, error, log = run(go())
    assert error is None and answer
    rows = q(db_copy, "SELECT * FROM interviews")
    assert len(rows) == 1 and rows[0]["agent_id"] == 2 and rows[0]["at_step"] == 100
    assert rows[0]["question"] == "Are you going to the party?" and rows[0]["answer"] == answer
    assert "Are you going to the party?" in log
    assert before == {t: q(db_copy, f"SELECT count(*) FROM {t}")[0][0] for t in before}


def test_browsing_never_writes(db_copy):
    digest = hashlib.sha256(db_copy.read_bytes()).hexdigest()

    async def go():
        app = app_for(db_copy, start=50)
        async with app.run_test(size=SIZE) as pilot:
            for key in ("1", "i", "p", "c", "r", "4", "full_stop"):
                await press(pilot, app, key)

    run(go())
    assert hashlib.sha256(db_copy.read_bytes()).hexdigest() == digest


# --------------------------------------------------------------------------- the command
def test_cli_rejects_a_corrupt_or_foreign_database_in_one_line(run_db, tmp_path):
    from village.cli import main

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    truncated = tmp_path / "truncated.db"
    data = run_db.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    runner = CliRunner()
    for path, needle in ((garbage, "not a Village run"), (foreign, "not a Village run"),
                         (truncated, "truncated"), (tmp_path / "missing.db", "no such file")):
        res = runner.invoke(main, ["inspect", str(path)])
        assert res.exit_code == 2, (path, res.output)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0] and path.name in lines[0], res.stderr
    res = runner.invoke(main, ["inspect", str(run_db), "--agent", "Nobody"])
    assert res.exit_code == 2 and "no agent 'Nobody'" in res.stderr
    res = runner.invoke(main, ["inspect", str(run_db), "--at", "day9 07:00"])
    assert res.exit_code == 2 and "outside the recorded run" in res.stderr


def test_help_has_an_example():
    from village.cli import main

    assert "Example" in main.commands["inspect"].help


# --------------------------------------------------------------------------- snapshots
# (screen name, keys from the previous screen); one app session walks through them all.
SCREENS = (
    ("memories", ()),
    ("town", ("1",)),
    ("plans", ("p",)),
    ("conversations", ("c",)),
    ("reflection", ("r", "enter")),
    ("probe", ("escape", "3", "slash", *"party at the cafe", "enter")),  # see _steady
    ("calls", ("4",)),
    ("call", ("enter",)),
    ("help", ("escape", "question_mark")),
)


def _normalise(svg: str) -> str:
    """Screens, not figures: ids vary per run, and token counts change with every prompt
    edit, so digits in the text are masked (the layout and every label still count)."""
    svg = re.sub(r"terminal-\d+", "terminal", svg)
    return re.sub(r">([^<]*)<", lambda m: ">" + re.sub(r"\d", "0", m.group(1)) + "<", svg)


async def _steady(pilot, app, name: str) -> None:  # noqa: ANN001
    """What a screen shows must not depend on the machine or its load: hide blinking
    cursors (their phase depends on how long the screen took), and list the probe's hits
    by text. Their order by score is exact (test_retrieval_probe_matches_the_memory_stream),
    but hashed test embeddings give many records mathematically equal relevance, so the
    order among those rests on the last bit of a float64 sum, which numpy computes with
    different SIMD kernels on different CPUs (CI's differed from this one)."""
    for box in app.screen.query(Input):
        box.cursor_blink = False
    if name == "probe":
        table = app.query_one("#probe-table", DataTable)
        table.sort("desc", "kind", "created", "rank", key=lambda cells: [str(c) for c in cells])
    await settle(pilot, app)


def test_snapshots_of_the_main_screens(run_db, tmp_path):
    async def go() -> dict[str, str]:
        shots = {}
        app = app_for(run_db, start=120, agent=1)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            for name, keys in SCREENS:
                for key in keys:
                    if name == "probe" and key == "enter":  # 9 hits: a rank's digits are one
                        app.query_one("#probe-k", Input).value = "9"  # cell wide (see _steady)
                    await press(pilot, app, key)
                await _steady(pilot, app, name)
                shots[name] = _normalise(app.export_screenshot(title=f"village inspect: {name}"))
        return shots

    update = bool(os.environ.get("VILLAGE_UPDATE_SNAPSHOTS"))
    differ = []
    for name, svg in run(go()).items():
        path = SNAPSHOTS / f"{name}.svg"
        if update or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(svg)
        elif path.read_text() != svg:
            (tmp_path / f"{name}.svg").write_text(svg)
            differ.append(name)
    assert not differ, (f"screens {differ} differ from {SNAPSHOTS}; the new ones are in {tmp_path} "
                        "(VILLAGE_UPDATE_SNAPSHOTS=1 accepts them)")
