"""`village report` / `village compare`: files written, and the Markdown's numbers are the
metric functions' own (on the hand-built fixture, and on a real short run of the bundled model)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_metrics import build_fixture
from village import metrics as M
from village.cli import main
from village.report import compare, compare_markdown, fmt_pct, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The Markdown's tables as (headers, rows) of unescaped cell text."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            def cells(line: str) -> list[str]:
                parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
                return [p.strip().replace("\\|", "|") for p in parts]
            head, rows = cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((head, rows))
        else:
            i += 1
    return tables


def table_with(tables: list, first_header: str, *more: str) -> list[list[str]]:
    for head, rows in tables:
        if head[0] == first_header and all(h in head for h in more):
            return [dict(zip(head, r)) for r in rows]  # type: ignore[misc]
    raise AssertionError(f"no table with headers {first_header}, {more}")


def pct(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def assert_report_matches(md: str, m: M.RunMetrics) -> None:
    """Every number the report prints equals what the metric functions return."""
    tables = md_tables(md)
    run = {r["run"]: r["value"] for r in table_with(tables, "run", "value")}
    assert int(run["steps"]) == m.info.last_step and int(run["residents"]) == m.info.n_agents
    assert float(run["simulated minutes"]) == pytest.approx(m.info.sim_hours * 60, abs=0.005)
    if m.diffusion:
        rows = {r["fact"]: r for r in table_with(tables, "fact", "knew at start", "knew at end")}
        assert set(rows) == set(m.diffusion)
        for name, d in m.diffusion.items():
            r = rows[name]
            assert int(r["knew at start"]) == d.initial and int(r["knew at end"]) == d.final
            assert int(r["agents"]) == d.n_agents
            assert pct(r["% at end"]) == pytest.approx(d.final_fraction, abs=0.0005)
            assert pct(r["% at start"]) == pytest.approx(d.initial_fraction, abs=0.0005)
            assert r["evidence"] == d.method
        for name, d in m.diffusion.items():  # the per-fact tables list exactly the knowers
            if d.knowers:
                who = [t for t in tables if t[0][:3] == ["agent", "since", "step"]]
                found = [[r[0] for r in rows] for _h, rows in who]
                assert [k.agent for k in d.knowers] in found
                rows_steps = [[int(r[2]) for r in rows] for _h, rows in who]
                assert [k.step for k in d.knowers] in rows_steps
    dens = {r[""]: r for r in table_with(tables, "", "edges", "density")}
    assert int(dens["start"]["edges"]) == m.density.edges_initial
    assert int(dens["end"]["edges"]) == m.density.edges_final
    assert float(dens["start"]["density"]) == pytest.approx(m.density.initial, abs=0.0005)
    assert float(dens["end"]["density"]) == pytest.approx(m.density.final, abs=0.0005)
    econ = {r["purpose"]: r for r in table_with(tables, "purpose", "calls", "calls/agent/h")}
    e = m.economy
    for r in [*e.by_purpose, {**e.totals, "purpose": "total"}]:
        row = econ[r["purpose"]]
        for col, key in (("calls", "calls"), ("prompt tok", "prompt_tokens"),
                         ("completion tok", "completion_tokens"), ("fallbacks", "fallbacks"),
                         ("cached", "cached"), ("invalid", "invalid"), ("retries", "retries")):
            assert int(row[col]) == r[key], (r["purpose"], col)
        if r["calls_per_agent_hour"] is not None:
            assert float(row["calls/agent/h"]) == pytest.approx(r["calls_per_agent_hour"], abs=0.00501)
            assert float(row["tokens/agent/h"]) == pytest.approx(r["tokens_per_agent_hour"], abs=0.0501)
    agents = {r["agent"]: r for r in table_with(tables, "agent", "calls", "tokens", "fallbacks")}
    for r in e.by_agent:
        assert int(agents[r["agent"]]["calls"]) == r["calls"]
        assert int(agents[r["agent"]]["tokens"]) == r["tokens"]
    coord_tables = [t for t in tables if t[0] == ["measure", "count", "who"]]
    assert len(coord_tables) == len(m.coordination)
    for (_h, rows), a in zip(coord_tables, m.coordination.values()):
        counts = {r[0]: int(r[1]) for r in rows}
        assert counts["knew by the start"] == len(a.knew)
        assert counts["came"] == len(a.attended)
        assert counts["came, and knew"] == len(a.knew_and_came)
        assert counts["planned to be there (plans overlapping the window)"] == len(a.planned)
        assert counts["came without knowing"] == len(a.came_without_knowing)


def assert_files(files) -> None:  # noqa: ANN001
    assert files.markdown.is_file() and files.html.is_file()
    assert {f.name for f in files.figures} == {"diffusion.png", "density.png", "social_graph.png",
                                              "calls_by_purpose.png"}
    for f in files.figures:
        assert f.read_bytes()[:8] == PNG and f.stat().st_size > 2000
        assert f"({f.name})" in files.markdown.read_text() and f'src="{f.name}"' in files.html.read_text()


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("report") / "fixture.db")


def test_report_on_fixture(fixture_db: Path, tmp_path: Path) -> None:
    files = write_report(fixture_db, tmp_path / "rep")
    assert_files(files)
    md = files.markdown.read_text()
    m = M.run_metrics(fixture_db)
    assert_report_matches(md, m)
    # the known answers, as printed
    assert "**0.167 → 0.667** (1 → 4 edges among 4 agents)" in md
    assert "Attendance among those who knew: 100.0% (2 of 2)." in md
    page = files.html.read_text()
    assert "<table>" in page and "0.167 → 0.667" in page and "Dee Fox (2 min)" in page
    assert "Cid Ray" in page and "&lt;" not in md


def test_report_default_folder(tmp_path: Path, fixture_db: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(fixture_db, db)
    files = write_report(db, method="keywords")
    assert files.directory == tmp_path / "copy-report"
    assert "| party | 1 | 25.0% | 2 | 4 | 50.0% | keywords | – |" in files.markdown.read_text()


def test_compare(fixture_db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    shutil.copy(fixture_db, other)
    headers, rows = compare([fixture_db, other])
    assert headers == ["measure", "fixture", "other"]
    by = {r[0]: r[1:] for r in rows}
    assert by["knew 'party' (start → end)"] == ["1 → 3 of 4 (75.0%)"] * 2
    assert by["density (start → end)"] == ["0.167 → 0.667"] * 2
    assert by["'party' attendance"] == ["came 2 of 2 who knew (100.0%)"] * 2
    assert by["ablations"] == ["reflection"] * 2 and by["model calls"] == ["6", "6"]
    assert by["fallbacks"] == [f"1 ({fmt_pct(1 / 6)})"] * 2
    md = compare_markdown(headers, rows)
    assert md.startswith("| measure | fixture | other |")


def test_cli_report_and_compare(fixture_db: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["report", str(fixture_db), "--out", str(tmp_path / "r"), "--keywords-only"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "report.html").is_file()
    r = CliRunner().invoke(main, ["compare", str(fixture_db), str(fixture_db), "--markdown"])
    assert r.exit_code == 0 and "| density (start → end) | 0.167 → 0.667 |" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing.db")])
    assert r.exit_code == 2 and "no such run database" in r.output
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite")
    r = CliRunner().invoke(main, ["compare", str(bad)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1


def test_report_interview_hook(tmp_path: Path) -> None:
    """--interview asks every agent about every fact (scripted model), then reports the answers."""
    from village import simulate

    db = tmp_path / "n.db"
    model = simulate.build("neighbours", simulate.RunOptions(llm="scripted", embedder="hash", cache=False, out=db))
    simulate.run(model, 2)
    r = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--interview"])
    assert r.exit_code == 0, r.output
    m = M.run_metrics(db)
    assert {n: len(k.asked) for n, k in m.interview_knowledge.items()} == {"potluck": 8, "lost cat": 8}
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Interviews" in md and "| potluck | 8 |" in md
