"""`village fork`: a run branched at a step continues exactly like the original unless it is
changed (a whisper, a changed resident); the change is kept across resumes and forks."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from village import simulate
from village.cli import main
from village.fork import ForkError, fork, parse_set, parse_whisper
from tests.test_resume import assert_same_recording, opts, recording

STEPS = 400


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fork") / "original.db"
    simulate.run(simulate.build("demo", opts(path)), STEPS)
    return path


def test_fork_without_changes_continues_exactly_like_the_original(original: Path, tmp_path: Path) -> None:
    for at in (0, 157):
        out = tmp_path / f"same-{at}.db"
        model, n = fork(original, at=at, out=out)
        assert (model.steps, n) == (at, STEPS - at)
        simulate.run(model, n)
        assert_same_recording(original, out, f"fork at {at}: ")
        run = sqlite3.connect(out).execute(
            "SELECT status, forked_from, forked_at, fork_changes, last_step FROM runs").fetchone()
        assert run == ("finished", str(original.resolve()), at, "[]", STEPS)


def test_fork_at_a_step_keeps_that_step_as_it_was(original: Path, tmp_path: Path) -> None:
    """Copied as it stood after step 150: records rated later are unrated again."""
    out = tmp_path / "at150.db"
    model, _ = fork(original, at=150, out=out, steps=10)
    model.recorder.close()
    model.close()
    src, dst = recording(original), recording(out)
    pending = {i for a in model.residents for i in [p.record.id for p in a.pending]}
    assert pending  # demo has unrated observations waiting at step 150
    for table in ("events", "utterances", "agent_states", "plans", "social_edges", "llm_calls",
                  "retrievals", "retrieval_hits", "checkpoints"):
        step_col = {"utterances": 2, "agent_states": 1, "plans": 2, "llm_calls": 1,
                    "social_edges": 0, "retrievals": 1, "checkpoints": 0, "events": 1}.get(table)
        if table == "retrieval_hits":
            kept = {r[0] for r in dst["retrievals"]}
            assert dst[table] == [r for r in src[table] if r[0] in kept]
            continue
        if table == "utterances":  # a conversation is recorded whole when it starts
            convs = {r[0] for r in dst["conversations"]}
            assert dst[table] == [r for r in src[table] if r[0] in convs]
            continue
        assert dst[table] == [r for r in src[table] if r[step_col] <= 150], table
    for s, d in zip([r for r in src["memories"] if r[2] <= 150], dst["memories"]):
        if s[0] in pending:
            assert d[:6] == s[:6] and d[6] is None and d[8] is None
        else:
            assert d == s
    assert len(dst["memories"]) == len([r for r in src["memories"] if r[2] <= 150])


def test_fork_with_a_whisper_changes_the_future_not_the_past(original: Path, tmp_path: Path) -> None:
    out = tmp_path / "rumour.db"
    text = "Tom Moreno said the Valentine's party is cancelled"
    model, n = fork(original, at=200, out=out, changes=[parse_whisper(f"Mei Lin: {text}")])
    simulate.run(model, n)
    src, dst = recording(original), recording(out)
    assert [r for r in dst["events"] if r[1] <= 200] == [r for r in src["events"] if r[1] <= 200]
    assert [r for r in dst["events"] if r[1] == 201 and r[3] == "whisper"] == \
        [(r[0], 201, 3, "whisper", text, None) for r in dst["events"]
         if r[1] == 201 and r[3] == "whisper"]
    mem = [r for r in dst["memories"] if r[5] == text]
    assert len(mem) == 1 and mem[0][1:5] == (3, 201, "2023-02-13T07:33:30", "whisper")
    assert dst["memories"] != src["memories"]  # Mei remembers it (and it changes what follows)
    changes = json.loads(sqlite3.connect(out).execute("SELECT fork_changes FROM runs").fetchone()[0])
    assert changes == [{"kind": "whisper", "agent": "Mei Lin", "text": text}]


def test_a_changed_resident_stays_changed_across_resume_and_forks(original: Path, tmp_path: Path) -> None:
    change = parse_set("Ayesha Khan.traits=['shy', 'quiet']")
    whole = tmp_path / "shy.db"
    model, n = fork(original, at=100, out=whole, changes=[change])
    simulate.run(model, n)
    conn = sqlite3.connect(whole)
    assert json.loads(conn.execute("SELECT traits FROM agents WHERE name = 'Ayesha Khan'")
                      .fetchone()[0]) == ["shy", "quiet"]
    prompts = [m for (m,) in conn.execute(
        "SELECT messages FROM llm_calls WHERE agent_id = 4 AND step > 100")]
    assert prompts and all("(shy, quiet)" in p for p in prompts)
    assert all("(shy, quiet)" not in p for (p,) in conn.execute(
        "SELECT messages FROM llm_calls WHERE agent_id = 4 AND step <= 100"))
    conn.close()
    # the same fork, stopped after 50 steps as by a crash, then resumed
    cut = tmp_path / "shy-cut.db"
    model, n = fork(original, at=100, out=cut, changes=[change])
    for _ in range(50):
        model.step()
    model.recorder.close()
    model.close()
    model, n = simulate.resume(cut)
    assert n == STEPS - 150 and model.agent_by_name["Ayesha Khan"].resident.traits == ["shy", "quiet"]
    simulate.run(model, n)
    assert_same_recording(whole, cut, "resumed fork: ")
    # a fork of the fork inherits the change
    model, _ = fork(cut, at=300, out=tmp_path / "again.db",
                    changes=[parse_set("Ayesha Khan.age=22")], steps=5)
    a = model.agent_by_name["Ayesha Khan"].resident
    assert (a.traits, a.age) == (["shy", "quiet"], 22)
    model.recorder.close()
    model.close()


@pytest.mark.parametrize(("args", "needle"), [
    (["--at", "9999"], "--at 9999: the run has steps 0 to 400"),
    (["--at", "5", "--whisper", "Nobody Here: hello"], "unknown resident 'Nobody Here'"),
    (["--at", "5", "--whisper", "no colon"], 'expected "AGENT: text"'),
    (["--at", "5", "--set", "Mei Lin.home=Hobbs Cafe"], "cannot change 'home'"),
    (["--at", "5", "--set", "Mei Lin.age=old"], "--set Mei Lin.age=old:"),
    (["--at", "5", "--set", "Mei Lin.wake=23:59"], "is not after wake"),
    (["--at", "5", "--steps", "2", "--hours", "1"], "give one of them"),
    (["--at", "400"], "the run ends at step 400; give --steps N"),
])
def test_bad_fork_requests_are_one_line_exit_2(original: Path, tmp_path: Path, args, needle) -> None:
    out = tmp_path / "f.db"
    res = CliRunner().invoke(main, ["fork", str(original), "--out", str(out), "--quiet", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not out.exists()


def test_fork_through_the_cli(original: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.db"
    res = CliRunner().invoke(main, ["fork", str(original), "--at", "-1", "--out", str(out),
                                    "--steps", "30", "--quiet",
                                    "--whisper", "Tom Moreno: the cafe roof leaks"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT status, forked_at, last_step FROM runs").fetchone() == \
        ("finished", STEPS, STEPS + 30)
    res = CliRunner().invoke(main, ["fork", str(original), "--at", "3", "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.stderr
    with pytest.raises(ForkError):
        parse_set("just words")
