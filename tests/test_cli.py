"""The `village` command line: exit codes, one-line errors, a recorded run."""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import scenario_text

VILLAGE = [sys.executable, "-m", "village.cli"]
ROOT = Path(__file__).resolve().parent.parent


def village(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, COLUMNS="120", **(env or {}))
    return subprocess.run([*VILLAGE, *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env=e, timeout=600)


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


BAD = {
    "missing_field": ('name = "Tom Moreno"\nage = 45', 'age = 45', "residents[0].name"),
    "unknown_home": ('home = "Moreno house"', 'home = "Moon base"', "home"),
    "duplicate_name": ('name = "Carmen Moreno"', 'name = "Tom Moreno"', "Tom Moreno"),
    "start_on_wall": ("start = [28, 2]", "start = [0, 0]", "start"),
    "malformed": ('seed = 42', 'seed = = 42', "line"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_exits_2_with_one_line(tmp_path, case):
    old, new, needle = BAD[case]
    text = scenario_text()
    assert old in text
    path = tmp_path / f"{case}.toml"
    path.write_text(text.replace(old, new, 1))
    line = one_line_error(village("run", str(path), "--steps", "1", "--llm", "scripted",
                                  "--embedder", "hash", "--no-cache", "--out", str(tmp_path / "x.db")))
    assert f"{case}.toml" in line and needle in line
    assert not (tmp_path / "x.db").exists()


def test_unknown_scenario_and_bad_options(tmp_path):
    assert "unknown scenario" in one_line_error(village("run", "no-such-town", "--llm", "scripted"))
    p = village("run", "demo", "--hours", "1", "--steps", "3", "--llm", "scripted")
    assert "give one of them" in one_line_error(p)
    p = village("run", "demo", "--steps", "2", "--llm", "nonsense:x", "--embedder", "hash",
                "--out", str(tmp_path / "y.db"))
    assert "nonsense" in one_line_error(p)


def test_run_records_and_summarises(tmp_path):
    out = tmp_path / "run.db"
    p = village("run", "demo", "--steps", "120", "--llm", "scripted", "--embedder", "hash",
                "--no-cache", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "Model calls by purpose" in p.stdout and "What each agent did" in p.stdout
    took = re.search(r"Recorded 120 steps in ([\d.]+) s .*\(recording took ([\d.]+) s, "
                     r"([\d.]+)% of step time\)", " ".join(p.stdout.split()))
    assert took and float(took[2]) <= float(took[1]) and 0 < float(took[3]) < 100
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT status, last_step FROM runs").fetchone() == ("finished", 120)
    assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 121
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the summary command reads the same database
    s = village("summary", str(out))
    assert s.returncode == 0 and "Tom Moreno" in s.stdout
    # an existing output is never overwritten
    again = village("run", "demo", "--steps", "1", "--llm", "scripted", "--embedder", "hash",
                    "--out", str(out))
    assert "already exists" in one_line_error(again)
    # interview: answers, is stored, and does not alter what the run recorded
    before = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    q = village("interview", str(out), "Tom Moreno", "What are you doing today?", "--at", "60",
                "--llm", "scripted")
    assert q.returncode == 0, q.stderr
    assert "Tom Moreno (step 60)" in q.stdout
    assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == before
    assert conn.execute("SELECT at_step, question FROM interviews").fetchone() == (60, "What are you doing today?")
    bad = village("interview", str(out), "Nobody", "hi", "--llm", "scripted")
    assert "unknown agent" in one_line_error(bad)


def test_help_of_every_command_has_an_example():
    from village.cli import main

    for name, cmd in main.commands.items():
        assert "Example" in (cmd.help or ""), f"`village {name}` help needs an example"


def test_run_set_changes_a_knob_and_records_it(tmp_path):
    import json
    import sqlite3

    from click.testing import CliRunner

    from village.cli import main

    out = tmp_path / "r.db"
    res = CliRunner().invoke(main, ["run", "demo", "--llm", "scripted", "--embedder", "hash",
                                    "--steps", "2", "--quiet", "--out", str(out),
                                    "--set", "reflection_min_minutes=0", "--set", "talk_gap_minutes=5"])
    assert res.exit_code == 0, res.output
    with sqlite3.connect(out) as conn:
        sim = json.loads(conn.execute("SELECT config FROM runs").fetchone()[0])["sim"]
    assert sim["reflection_min_minutes"] == 0 and sim["talk_gap_minutes"] == 5
    for bad, needle in (("nope=1", "expected NAME=VALUE"), ("talk_gap_minutes=x", "whole number"),
                        ("talk_gap_minutes", "expected NAME=VALUE"),
                        ("reflection_threshold=-1", "cannot be negative")):
        res = CliRunner().invoke(main, ["run", "demo", "--llm", "scripted", "--set", bad,
                                        "--out", str(tmp_path / "x.db")])
        assert res.exit_code == 2 and needle in res.output, (bad, res.output)
        assert not (tmp_path / "x.db").exists()
