"""Metrics on a hand-built run database with known answers (no model, no simulation)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memory.embeddings import HashEmbedder
from village import metrics as M
from village.recorder import SCHEMA, SCHEMA_VERSION

START = datetime(2023, 2, 13, 7, 0)
SPS = 60  # one step = one game minute, so minutes are easy to count
LAST = 20
FACTS_TOML = """
[[facts]]
name = "party"
keywords = ["party"]
place = "Cafe"
start = "2023-02-13T07:10:00"
end = "2023-02-13T07:20:00"

[[facts]]
name = "secret"
keywords = ["buried treasure"]
"""
EMB = HashEmbedder(16)
PARTY = M.describe_fact("party", ["party"], "Cafe", START + timedelta(minutes=10), START + timedelta(minutes=20))


def _vec(text: str) -> bytes:
    return np.asarray(EMB.embed([text])[0], dtype="<f4").tobytes()


def build_fixture(path: Path) -> Path:
    """Four agents: Ann hosts the party (knows at step 0), Bob hears of it in a chat at step 5,
    Cid remembers it without the keyword at step 12 (its embedding is the fact's own), Dee
    never hears of it but her persona names the buried treasure."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("INSERT INTO runs(id, scenario, scenario_toml, seed, llm, embedder, embedder_dim,"
                 " seconds_per_step, game_start, status, last_step, ablations) VALUES"
                 " (1, 'fixture', ?, 3, 'scripted', 'hash-16', 16, ?, ?, 'finished', ?, '[\"reflection\"]')",
                 (FACTS_TOML, SPS, START.isoformat(), LAST))
    agents = [(1, "Ann Lee", "Ann runs the Cafe."), (2, "Bob Diaz", ""), (3, "Cid Ray", ""),
              (4, "Dee Fox", "Dee is looking for the buried treasure of the old mill.")]
    for aid, name, currently in agents:
        conn.execute("INSERT INTO agents(id, name, age, traits, background, currently, routine, home)"
                     " VALUES (?, ?, 30, '[]', '', ?, '', 'Home')", (aid, name, currently))
    for s in range(LAST + 1):
        conn.execute("INSERT INTO steps VALUES (?, ?, 0, ?, 0, 0)",
                     (s, (START + timedelta(seconds=s * SPS)).isoformat(), 0.0 if s == 0 else 1000.0))
    mems = [  # (id, agent, step, kind, description, embedding text)
        (1_000_001, 1, 0, "observation", "Ann Lee is hosting a party at the Cafe", None),
        (2_000_001, 2, 3, "observation", "Bob Diaz is walking on the Street", None),
        (2_000_002, 2, 5, "chat", "Bob Diaz talked with Ann Lee at Cafe: Ann: come to my PARTY!", None),
        (2_000_003, 2, 8, "plan", "Bob Diaz plans to go to the party", None),
        (3_000_001, 3, 12, "observation", "Cid Ray heard of a get-together", PARTY),
        (4_000_001, 4, 3, "observation", "Dee Fox is reading a book", None),
        (4_000_002, 4, 14, "observation", "Dee Fox reads about parties", None),  # not "party"
    ]
    for mid, aid, step, kind, desc, emb_text in mems:
        conn.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, 5, ?, NULL)",
                     (mid, aid, step, (START + timedelta(seconds=step * SPS)).isoformat(), kind, desc,
                      _vec(emb_text or desc)))
    for row in [(0, 1, 2, "seeded", 0, "friend"), (4, 1, 2, "conversation", 1, "friend"),
                (6, 2, 3, "conversation", 1, None), (15, 3, 4, "conversation", 1, None),
                (15, 1, 4, "conversation", 1, None), (19, 1, 2, "conversation", 2, "friend")]:
        conn.execute("INSERT INTO social_edges VALUES (?, ?, ?, ?, ?, ?)", row)
    states = [(1, 0, "Home"), (1, 8, "Cafe:counter"),
              (2, 0, "Home"), (2, 15, "Cafe"), (2, 17, "Street"),
              (3, 0, "Cafe:seating"), (3, 9, "Street"),
              (4, 0, "Street"), (4, 18, "Cafe:seating:corner table")]
    for aid, step, place in states:
        conn.execute("INSERT INTO agent_states VALUES (?, ?, 0, 0, ?, 'x', NULL, NULL, NULL, 0)",
                     (aid, step, place))
    plans = [(2_000_010, 2, 6, "07:12", "07:30", "Cafe"), (3_000_010, 3, 6, "07:12", "07:30", "Street"),
             (4_000_010, 4, 0, "06:00", "07:05", "Cafe")]
    for pid, aid, step, a, b, place in plans:
        conn.execute("INSERT INTO plans(id, agent_id, step, level, start, end, description, place)"
                     " VALUES (?, ?, ?, 'action', ?, ?, 'go', ?)",
                     (pid, aid, step, f"2023-02-13T{a}:00", f"2023-02-13T{b}:00", place))
    calls = [  # (agent, purpose, prompt, completion, cached, fallback, invalid)
        (1, "plan", 100, 20, 0, 0, None), (1, "plan", 100, 20, 0, 0, None), (1, "plan", 100, 20, 0, 0, None),
        (1, "importance", 50, 5, 0, 1, "expected 2 ratings"),
        (2, "converse", 80, 10, 0, 0, None), (2, "converse", 80, 10, 1, 0, None),
    ]
    seq: dict[int, int] = {}
    for aid, purpose, pt, ct, cached, fb, invalid in calls:
        seq[aid] = seq.get(aid, 0) + 1
        conn.execute("INSERT INTO llm_calls(id, step, agent_id, purpose, prompt_tokens, completion_tokens,"
                     " cached, retries, invalid, fallback) VALUES (?, 1, ?, ?, ?, ?, ?, 0, ?, ?)",
                     (aid * 1_000_000 + seq[aid], aid, purpose, pt, ct, cached, invalid, fb))
    interviews = [(1, 20, "Have you heard anything about the party at Cafe?", "Yes, I am hosting it!"),
                  (2, 2, "Have you heard anything about the party at Cafe?", "Yes."),
                  (2, 20, "Have you heard anything about the party at Cafe?", "No, I don't know about that."),
                  (3, 20, "Do you know Dee Fox?", "Yes, Dee is my neighbour."),
                  (4, 20, "Do you know Cid Ray?", "No."),
                  (4, 20, "Do you know Ann Lee?", "Not sure.")]
    for aid, at, q, a in interviews:
        conn.execute("INSERT INTO interviews(asked_at, agent_id, at_step, question, answer, model)"
                     " VALUES ('2026-01-01T00:00:00', ?, ?, ?, ?, 'scripted')", (aid, at, q, a))
    conn.commit()
    conn.close()
    return path


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("metrics") / "fixture.db")


def test_run_info(run_db: Path) -> None:
    info = M.run_info(run_db)
    assert info.n_agents == 4 and info.last_step == LAST
    assert info.sim_hours == pytest.approx(LAST / 60)
    assert info.ablations == ["reflection"]
    assert [f.name for f in info.facts] == ["party", "secret"]
    party = info.fact("party")
    assert party.has_window and party.place == "Cafe" and party.start == START + timedelta(minutes=10)
    assert not info.fact("secret").has_window
    with pytest.raises(KeyError, match="no fact 'nope'"):
        info.fact("nope")


def test_diffusion_keywords_and_embedding(run_db: Path) -> None:
    d = M.diffusion(run_db, "party")
    assert d.method == "keywords+embedding" and d.embedder == "hash-16"
    assert [(k.agent, k.step, k.via, k.source) for k in d.knowers] == [
        ("Ann Lee", 0, "keyword", "observation"),
        ("Bob Diaz", 5, "keyword", "chat"),  # case-insensitive; the first mention counts
        ("Cid Ray", 12, "embedding", "observation"),  # no keyword, same meaning
    ]
    assert d.knowers[2].similarity == pytest.approx(1.0, abs=1e-5)
    assert [(s, c) for s, _t, c in d.curve] == [(0, 1), (5, 2), (12, 3), (LAST, 3)]
    assert d.curve[1][1] == START + timedelta(minutes=5)
    assert (d.initial, d.final, d.n_agents) == (1, 3, 4)
    assert d.final_fraction == 0.75 and d.known_at(11) == 2 and d.knew_by(5) == ["Ann Lee", "Bob Diaz"]


def test_diffusion_keywords_only_and_threshold(run_db: Path) -> None:
    d = M.diffusion(run_db, "party", method="keywords")
    assert [k.agent for k in d.knowers] == ["Ann Lee", "Bob Diaz"] and d.method == "keywords"
    everyone = M.diffusion(run_db, "party", threshold=-1.0)  # every memory "similar": all know at once
    assert everyone.final == 4
    with pytest.raises(ValueError, match="dim"):
        M.diffusion(run_db, "party", embedder=HashEmbedder(8))


def test_diffusion_persona(run_db: Path) -> None:
    d = M.diffusion(run_db, "secret")
    assert [(k.agent, k.step, k.via) for k in d.knowers] == [("Dee Fox", 0, "persona")]
    assert M.diffusion(run_db, "secret", persona=False).final == 0


def test_keyword_pattern() -> None:
    pat = M.keyword_pattern(["valentine", "running for mayor"])
    assert pat.search("Happy Valentine's Day")
    assert pat.search("Sam is running  for\nmayor")
    assert not pat.search("a nonvalentine thing")
    assert pat.search("valentines")  # a keyword may continue: campaign -> campaigning
    assert not pat.search("running for council")


def test_density(run_db: Path) -> None:
    dn = M.density(run_db)
    assert [(s, e) for s, _t, e, _d in dn.curve] == [(0, 1), (6, 2), (15, 4), (LAST, 4)]
    assert dn.initial == pytest.approx(1 / 6) and dn.final == pytest.approx(4 / 6)
    assert dn.at(10) == pytest.approx(2 / 6)
    ab = next(e for e in dn.edges if {e.a, e.b} == {"Ann Lee", "Bob Diaz"})
    assert (ab.since, ab.kind, ab.conversations) == (0, "seeded", 2)
    talked = M.density(run_db, kinds=["conversation"])  # the graph of who talked with whom
    assert talked.initial == 0 and talked.edges_final == 4
    assert next(e for e in talked.edges if {e.a, e.b} == {"Ann Lee", "Bob Diaz"}).since == 4
    assert M.graph_density(300, 25) == 1.0 and M.graph_density(0, 1) == 0.0


def test_coordination(run_db: Path) -> None:
    a = M.coordination(run_db, "party")
    assert a.window == (10, 19) and a.reached and a.covered == 1.0
    assert a.knew == ["Ann Lee", "Bob Diaz"]  # Cid learnt after the start
    assert a.seeded == ["Ann Lee"] and a.invited == ["Bob Diaz"]
    assert a.present == {"Ann Lee": 10.0, "Bob Diaz": 2.0, "Dee Fox": 2.0}  # minutes
    assert a.attended == ["Ann Lee", "Bob Diaz", "Dee Fox"]  # Cid left before the window
    assert a.knew_and_came == ["Ann Lee", "Bob Diaz"] and a.rate == 1.0
    assert a.invited_came == ["Bob Diaz"] and a.came_without_knowing == ["Dee Fox"]
    assert a.planned == ["Bob Diaz"] and a.planned_knowing == ["Bob Diaz"]
    strict = M.coordination(run_db, "party", min_minutes=5)
    assert strict.attended == ["Ann Lee"] and strict.rate == 0.5
    with pytest.raises(ValueError, match="no place and time window"):
        M.coordination(run_db, "secret")


def test_economy(run_db: Path) -> None:
    e = M.economy(run_db)
    assert e.sim_hours == pytest.approx(1 / 3) and e.wall_s == pytest.approx(20.0)
    assert e.wall_s_per_sim_minute == pytest.approx(1.0)
    t = e.totals
    assert (t["calls"], t["prompt_tokens"], t["completion_tokens"], t["tokens"]) == (6, 510, 85, 595)
    assert (t["fallbacks"], t["cached"], t["invalid"]) == (1, 1, 1)
    assert e.fallback_rate == pytest.approx(1 / 6)
    assert t["calls_per_agent_hour"] == pytest.approx(6 / (4 / 3))
    assert t["tokens_per_agent_hour"] == pytest.approx(595 / (4 / 3))
    plan = next(r for r in e.by_purpose if r["purpose"] == "plan")
    assert plan["calls"] == 3 and plan["calls_per_agent_hour"] == pytest.approx(2.25)
    ann = next(r for r in e.by_agent if r["agent"] == "Ann Lee")
    assert ann["calls"] == 4 and ann["calls_per_agent_hour"] == pytest.approx(12.0)
    dee = next(r for r in e.by_agent if r["agent"] == "Dee Fox")
    assert dee["calls"] == 0


def test_interviews(run_db: Path) -> None:
    k = M.interview_knowledge(run_db, "party")
    assert k.asked == ["Ann Lee", "Bob Diaz"] and k.knows == ["Ann Lee"]  # Bob's latest answer is no
    assert k.fraction == 0.5
    d = M.interview_density(run_db)
    assert d.asked_pairs == 3 and d.knows == [("Cid Ray", "Dee Fox")]
    assert d.edges == 1 and d.density == pytest.approx(1 / 6)
    assert M.affirmative("Yes, of course") and not M.affirmative("No idea")
    assert M.affirmative("Rosa's party is tomorrow", ["party"]) and not M.affirmative("", ["party"])


def test_run_metrics_bundle(run_db: Path) -> None:
    m = M.run_metrics(run_db)
    assert set(m.diffusion) == {"party", "secret"} and set(m.coordination) == {"party"}
    assert m.interview_knowledge["party"].knows == ["Ann Lee"]
    assert m.interview_density is not None and m.interview_density.edges == 1


def test_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        M.run_info(tmp_path / "missing.db")
    bad = tmp_path / "bad.db"
    sqlite3.connect(bad).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(ValueError, match="not a Village run"):
        M.run_info(bad)
