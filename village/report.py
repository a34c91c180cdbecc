"""`village report` and `village compare`: the metrics of runs as Markdown, HTML and plots.

A report is built once as a list of blocks (headings, paragraphs, tables, figures) from the
metric functions' results (:mod:`village.metrics`) and rendered twice, to Markdown and to HTML,
so both always show the same numbers. Figures are PNG files drawn with matplotlib's Agg
backend (no display needed): diffusion curves, density over time, the social graph, model
calls by purpose.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from village import metrics as M

# ---------------------------------------------------------------------------- formatting


def fmt_num(x: float | int | None, digits: int = 2) -> str:
    """Numbers as the report prints them (tests compare against this)."""
    if x is None:
        return "–"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}f}"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def fmt_time(t: datetime) -> str:
    return t.strftime("%a %d %b %H:%M:%S")


def fmt_density(x: float) -> str:
    return f"{x:.3f}"


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------------------- documents
@dataclass
class Doc:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", list(headers), [[str(c) for c in r] for r in rows]))

    def img(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out.append("| " + " | ".join(_md_cell(h) for h in b[1]) + " |")
                out.append("|" + "|".join("---" for _ in b[1]) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b[2]]
                out.append("")
            elif b[0] == "img":
                out += [f"![{b[2]}]({b[1]})", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
               f"<title>{e(self.title)}</title>", f"<style>{_CSS}</style></head><body>",
               f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{_inline_html(b[1])}</p>")
            elif b[0] == "table":
                out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b[1])
                           + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2]]
                out.append("</tbody></table>")
            elif b[0] == "img":
                out.append(f"<figure><img src=\"{e(b[1])}\" alt=\"{e(b[2])}\"><figcaption>{e(b[2])}"
                           "</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left;font-size:90%}th{background:#f3f3f3}img{max-width:100%}"
        "figure{margin:1em 0}figcaption{color:#666;font-size:85%}code{background:#f3f3f3}")


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _inline_html(text: str) -> str:
    """Escape, then render `code` spans and **bold** as Markdown would."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


# ---------------------------------------------------------------------------- figures
def _figure(w: float = 8, h: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _time_axis(ax: Any, t0: datetime, t1: datetime) -> None:
    import matplotlib.dates as mdates

    span = (t1 - t0).total_seconds()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if span <= 86400 else "%d %b %H:%M"))
    ax.set_xlim(t0, t1 if t1 > t0 else t0.replace(second=59))
    ax.set_xlabel("game time")
    ax.grid(alpha=0.3)


def _step_xy(points: list[tuple[datetime, float]]) -> tuple[list[datetime], list[float]]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return xs, ys


def plot_diffusion(m: M.RunMetrics, path: Path) -> None:
    fig, ax = _figure()
    for name, d in m.diffusion.items():
        xs, ys = _step_xy([(t, 100 * c / max(d.n_agents, 1)) for _s, t, c in d.curve])
        ax.step(xs, ys, where="post", linewidth=2, label=f"{name} ({d.final}/{d.n_agents})")
    ax.set_ylabel("agents who know (%)")
    ax.set_ylim(0, 102)
    _time_axis(ax, m.info.game_start, m.info.game_end)
    ax.set_title("Information diffusion")
    if m.diffusion:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


def plot_density(m: M.RunMetrics, path: Path) -> None:
    fig, ax = _figure()
    xs, ys = _step_xy([(t, dens) for _s, t, _e, dens in m.density.curve])
    ax.step(xs, ys, where="post", linewidth=2, color="tab:purple")
    ax.set_ylabel("density 2|E| / (|V|(|V|−1))")
    ax.set_ylim(0, 1.02)
    _time_axis(ax, m.info.game_start, m.info.game_end)
    ax.set_title(f"Relationship formation ({m.density.edges_initial} → {m.density.edges_final} edges)")
    fig.tight_layout()
    fig.savefig(path)


def plot_social_graph(m: M.RunMetrics, path: Path) -> None:
    import networkx as nx

    g = nx.Graph()
    names = list(m.info.agents.values())
    g.add_nodes_from(names)
    for e in m.density.edges:
        g.add_edge(e.a, e.b, kind=e.kind, conversations=e.conversations)
    fig, ax = _figure(8, 7)
    pos = nx.spring_layout(g, seed=1, k=1.8 / math.sqrt(max(len(names), 1)))
    first = next(iter(m.diffusion.values()), None)
    knows = {k.agent for k in first.knowers} if first else set()
    colors = ["tab:orange" if n in knows else "#cfd8dc" for n in names]
    seeded = [(e.a, e.b) for e in m.density.edges if e.kind == "seeded"]
    formed = [(e.a, e.b) for e in m.density.edges if e.kind != "seeded"]
    width = {(e.a, e.b): 1 + math.log1p(e.conversations) for e in m.density.edges}
    nx.draw_networkx_edges(g, pos, edgelist=seeded, ax=ax, edge_color="#9e9e9e",
                           width=[width[x] for x in seeded])
    nx.draw_networkx_edges(g, pos, edgelist=formed, ax=ax, edge_color="tab:blue",
                           width=[width[x] for x in formed])
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=520, edgecolors="#555")
    nx.draw_networkx_labels(g, pos, ax=ax, labels={n: n.split()[0] for n in names}, font_size=8)
    sub = f"orange: knows '{first.fact.name}' by the end; " if first else ""
    ax.set_title(f"Social graph at the end — {sub}grey: seeded, blue: formed in conversation",
                 fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)


def plot_calls(m: M.RunMetrics, path: Path) -> None:
    fig, ax = _figure(8, 3.6)
    rows = list(reversed(m.economy.by_purpose))
    labels = [r["purpose"] or "?" for r in rows]
    calls = [r["calls"] for r in rows]
    fb = [r["fallbacks"] for r in rows]
    ax.barh(labels, calls, color="tab:blue", label="calls")
    ax.barh(labels, fb, color="tab:red", label="fallbacks")
    for i, c in enumerate(calls):
        ax.text(c, i, f" {c}", va="center", fontsize=8)
    ax.set_xlabel("model calls")
    ax.set_title(f"Model calls by purpose ({m.economy.totals['calls']} calls, "
                 f"{m.economy.totals['tokens']} tokens)")
    if rows:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


FIGURES = {
    "diffusion.png": (plot_diffusion, "Information diffusion: share of agents who know each fact"),
    "density.png": (plot_density, "Network density over time"),
    "social_graph.png": (plot_social_graph, "The social graph at the end of the run"),
    "calls_by_purpose.png": (plot_calls, "Model calls by purpose (fallbacks in red)"),
}


# ---------------------------------------------------------------------------- the report
@dataclass
class ReportFiles:
    directory: Path
    markdown: Path
    html: Path
    figures: list[Path]
    metrics: M.RunMetrics


def build_doc(m: M.RunMetrics, figures: dict[str, str] | None = None) -> Doc:
    """The report's blocks, from a run's metrics. ``figures``: file name -> alt text to embed."""
    info = m.info
    figures = figures or {}
    doc = Doc(f"Run report: {info.scenario}")
    mins = info.sim_hours * 60
    doc.table(["run", "value"], [
        ["database", info.path],
        ["scenario", info.scenario],
        ["model", info.llm],
        ["embedder", f"{info.embedder} ({info.embedder_dim}-d)"],
        ["seed", info.seed],
        ["ablations", ", ".join(info.ablations) or "none"],
        ["status", info.status],
        ["steps", info.last_step],
        ["game time", f"{fmt_time(info.game_start)} → {fmt_time(info.game_end)}"],
        ["simulated minutes", fmt_num(mins)],
        ["residents", info.n_agents],
    ])

    doc.h(2, "Information diffusion")
    if not m.diffusion:
        doc.p("The scenario declares no `[[facts]]` to track.")
    else:
        doc.p("An agent knows a fact from its first memory that mentions it: a keyword match, or "
              "an embedding similar enough to the fact's description (the run's own embedder); "
              "a persona that names it counts from the start. See docs/metrics.md.")
        rows = []
        for name, d in m.diffusion.items():
            rows.append([name, d.initial, fmt_pct(d.initial_fraction), d.final, d.n_agents,
                         fmt_pct(d.final_fraction), d.method,
                         fmt_num(d.threshold) if d.threshold is not None else "–"])
        doc.table(["fact", "knew at start", "% at start", "knew at end", "agents", "% at end",
                   "evidence", "similarity ≥"], rows)
        if "diffusion.png" in figures:
            doc.img("diffusion.png", figures["diffusion.png"])
        for name, d in m.diffusion.items():
            doc.h(3, f"Who knows '{name}'")
            doc.p(f"Keywords: {', '.join(d.fact.keywords)}"
                  + (f"; place: {d.fact.place}" if d.fact.place else "")
                  + (f"; window: {fmt_time(d.fact.start)} → {fmt_time(d.fact.end)}"
                     if d.fact.start and d.fact.end else ""))
            if not d.knowers:
                doc.p("Nobody.")
                continue
            doc.table(["agent", "since", "step", "how", "from", "similarity", "evidence"],
                      [[k.agent, fmt_time(k.time), k.step, k.via, k.source,
                        fmt_num(k.similarity) if k.similarity is not None else "–", _short(k.text)]
                       for k in d.knowers])

    doc.h(2, "Relationship formation")
    dn = m.density
    doc.p(f"Density 2|E| / (|V|(|V|−1)) on the social graph (seeded relationships plus "
          f"conversations): **{fmt_density(dn.initial)} → {fmt_density(dn.final)}** "
          f"({dn.edges_initial} → {dn.edges_final} edges among {dn.n_agents} agents).")
    doc.table(["", "edges", "density"], [
        ["start", dn.edges_initial, fmt_density(dn.initial)],
        ["end", dn.edges_final, fmt_density(dn.final)],
    ])
    for name in ("density.png", "social_graph.png"):
        if name in figures:
            doc.img(name, figures[name])
    formed = [e for e in dn.edges if e.since > 0]
    if formed:
        doc.h(3, "Relationships formed during the run")
        doc.table(["agent", "agent", "since", "first contact", "conversations"],
                  [[e.a, e.b, fmt_time(info.time_of(e.since)), e.kind, e.conversations]
                   for e in formed[:60]])
        if len(formed) > 60:
            doc.p(f"… and {len(formed) - 60} more.")
    if m.interview_density is not None:
        idn = m.interview_density
        doc.p(f"By interview (\"Do you know X?\", as the paper measured it): {idn.edges} edges, "
              f"density {fmt_density(idn.density)} ({idn.asked_pairs} answers).")

    doc.h(2, "Coordination")
    if not m.coordination:
        doc.p("No fact has both a place and a time window.")
    for name, a in m.coordination.items():
        s0, s1 = a.window
        state = ("the run ended before the window" if not a.reached
                 else f"the run covered {fmt_pct(a.covered)} of the window")
        doc.p(f"'{name}' at {a.fact.place}, {fmt_time(a.fact.start)} → {fmt_time(a.fact.end)} "
              f"(steps {s0}–{s1}): {state}.")
        doc.table(["measure", "count", "who"], [
            ["knew by the start", len(a.knew), ", ".join(a.knew) or "–"],
            ["of them invited (not knowing from step 0)", len(a.invited), ", ".join(a.invited) or "–"],
            ["planned to be there (plans overlapping the window)", len(a.planned), ", ".join(a.planned) or "–"],
            ["planned, and knew", len(a.planned_knowing), ", ".join(a.planned_knowing) or "–"],
            ["came", len(a.attended), ", ".join(f"{n} ({a.present[n]:.0f} min)" for n in a.attended) or "–"],
            ["came, and knew", len(a.knew_and_came), ", ".join(a.knew_and_came) or "–"],
            ["invited and came", len(a.invited_came), ", ".join(a.invited_came) or "–"],
            ["came without knowing", len(a.came_without_knowing), ", ".join(a.came_without_knowing) or "–"],
        ])
        if a.reached:
            doc.p(f"Attendance among those who knew: {fmt_pct(a.rate)}"
                  + (f" ({len(a.knew_and_came)} of {len(a.knew)})." if a.knew else "."))
        else:
            doc.p(f"Attendance not measured: the run ended before the window. Planning to come, "
                  f"among those who knew: {len(a.planned_knowing)} of {len(a.knew)}.")

    doc.h(2, "Model economy")
    e = m.economy
    t = e.totals
    doc.p(f"{t['calls']} model calls, {t['tokens']} tokens ({t['prompt_tokens']} prompt, "
          f"{t['completion_tokens']} completion) over {fmt_num(e.sim_hours * 60)} simulated minutes; "
          f"{t['fallbacks']} fallbacks ({fmt_pct(e.fallback_rate)} of calls), {t['invalid']} invalid answers, "
          f"{t['retries']} retries, {t['cached']} answered from the cache. Wall time stepping: "
          f"{fmt_num(e.wall_s, 1)} s, {fmt_num(e.wall_s_per_sim_minute, 1)} s per simulated minute.")
    cols = ["purpose", "calls", "calls/agent/h", "prompt tok", "completion tok", "tokens/agent/h",
            "cached", "retries", "invalid", "fallbacks"]

    def econ_row(label: str, r: dict[str, Any]) -> list[Any]:
        return [label, r["calls"], fmt_num(r["calls_per_agent_hour"]), r["prompt_tokens"],
                r["completion_tokens"], fmt_num(r["tokens_per_agent_hour"], 1), r["cached"],
                r["retries"], r["invalid"], r["fallbacks"]]

    doc.table(cols, [econ_row(r["purpose"] or "?", r) for r in e.by_purpose] + [econ_row("total", t)])
    if "calls_by_purpose.png" in figures:
        doc.img("calls_by_purpose.png", figures["calls_by_purpose.png"])
    doc.h(3, "By agent")
    doc.table(["agent", "calls", "tokens", "calls/h", "tokens/h", "fallbacks"],
              [[r["agent"], r["calls"], r["tokens"], fmt_num(r["calls_per_agent_hour"]),
                fmt_num(r["tokens_per_agent_hour"], 1), r["fallbacks"]] for r in e.by_agent])
    if m.interview_knowledge:
        doc.h(2, "Interviews")
        doc.table(["fact", "asked", "said they know", "%"],
                  [[n, len(k.asked), len(k.knows), fmt_pct(k.fraction)]
                   for n, k in m.interview_knowledge.items()])
    return doc


def write_report(db: str | Path, out_dir: str | Path | None = None, *,
                 metrics: M.RunMetrics | None = None, **metric_kw: Any) -> ReportFiles:
    """Compute a run's metrics and write ``report.md``, ``report.html`` and the PNG figures
    to ``out_dir`` (default: ``RUN-report/`` next to the database)."""
    db = Path(db)
    out = Path(out_dir) if out_dir is not None else db.with_name(db.stem + "-report")
    out.mkdir(parents=True, exist_ok=True)
    m = metrics or M.run_metrics(db, **metric_kw)
    written = []
    alts = {}
    for name, (fn, alt) in FIGURES.items():
        fn(m, out / name)
        written.append(out / name)
        alts[name] = alt
    doc = build_doc(m, alts)
    md, page = out / "report.md", out / "report.html"
    md.write_text(doc.to_markdown(), encoding="utf-8")
    page.write_text(doc.to_html(), encoding="utf-8")
    return ReportFiles(out, md, page, written, m)


# ---------------------------------------------------------------------------- comparison
def compare(dbs: Sequence[str | Path], **metric_kw: Any) -> tuple[list[str], list[list[str]]]:
    """A side-by-side table of runs: one row per measure, one column per run."""
    ms = [M.run_metrics(db, **metric_kw) for db in dbs]
    return compare_metrics(ms)


def compare_metrics(ms: Sequence[M.RunMetrics]) -> tuple[list[str], list[list[str]]]:
    headers = ["measure"] + [_run_label(m, ms) for m in ms]
    rows: list[list[str]] = []

    def row(label: str, values: list[Any]) -> None:
        rows.append([label] + [str(v) for v in values])

    row("scenario", [m.info.scenario for m in ms])
    row("model", [m.info.llm for m in ms])
    row("embedder", [m.info.embedder for m in ms])
    row("ablations", [", ".join(m.info.ablations) or "none" for m in ms])
    row("seed", [m.info.seed for m in ms])
    row("steps", [m.info.last_step for m in ms])
    row("simulated minutes", [fmt_num(m.info.sim_hours * 60) for m in ms])
    row("residents", [m.info.n_agents for m in ms])
    facts = list(dict.fromkeys(f for m in ms for f in m.diffusion))
    for f in facts:
        row(f"knew '{f}' (start → end)", [
            f"{m.diffusion[f].initial} → {m.diffusion[f].final} of {m.diffusion[f].n_agents} "
            f"({fmt_pct(m.diffusion[f].final_fraction)})" if f in m.diffusion else "–" for m in ms])
    row("density (start → end)", [f"{fmt_density(m.density.initial)} → {fmt_density(m.density.final)}"
                                  for m in ms])
    row("edges (start → end)", [f"{m.density.edges_initial} → {m.density.edges_final}" for m in ms])
    cfacts = list(dict.fromkeys(f for m in ms for f in m.coordination))
    for f in cfacts:
        vals = []
        for m in ms:
            a = m.coordination.get(f)
            if a is None:
                vals.append("–")
            elif not a.reached:
                vals.append(f"not reached; planned {len(a.planned_knowing)} of {len(a.knew)} who knew")
            else:
                vals.append(f"came {len(a.knew_and_came)} of {len(a.knew)} who knew ({fmt_pct(a.rate)})")
        row(f"'{f}' attendance", vals)
    row("model calls", [m.economy.totals["calls"] for m in ms])
    row("calls / agent / sim h", [fmt_num(m.economy.totals["calls_per_agent_hour"]) for m in ms])
    row("tokens / agent / sim h", [fmt_num(m.economy.totals["tokens_per_agent_hour"], 1) for m in ms])
    row("fallbacks", [f"{m.economy.totals['fallbacks']} ({fmt_pct(m.economy.fallback_rate)})" for m in ms])
    row("wall s / sim minute", [fmt_num(m.economy.wall_s_per_sim_minute, 1) for m in ms])
    return headers, rows


def _run_label(m: M.RunMetrics, ms: Sequence[M.RunMetrics]) -> str:
    stem = Path(m.info.path).stem
    stems = [Path(x.info.path).stem for x in ms]
    return stem if stems.count(stem) == 1 else str(m.info.path)


def compare_markdown(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
           "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- interviews
def fact_question(fact: M.FactSpec) -> str:
    """The interview question for a fact (the paper asked, e.g., about the party)."""
    return f"Have you heard anything about the {fact.name}" + (f" at {fact.place}" if fact.place else "") + "?"


def run_interviews(db: str | Path, *, pairs: bool = False, at: int | None = None,
                   llm_spec: str | None = None, progress: Any = None) -> int:
    """Ask every agent about every fact (and, with ``pairs``, "Do you know X?" about every
    other agent, as the paper measured density) with ``village interview``; the answers are
    appended to the run's ``interviews`` table, where the interview metrics read them.
    Not a pure function: it calls the model (the run's own by default). Returns the count."""
    from agents.llm.factory import build_model
    from village.interview import interview, spec_for_recorded

    info = M.run_info(db)
    model = build_model(llm_spec or spec_for_recorded(info.llm), seed=info.seed or 0)
    questions = [(a, fact_question(f)) for a in info.agents.values() for f in info.facts]
    if pairs:
        questions += [(a, f"Do you know {b}?") for a in info.agents.values()
                      for b in info.agents.values() if a != b]
    for i, (agent, q) in enumerate(questions):
        interview(db, agent, q, at=at, llm=model)
        if progress is not None:
            progress(i + 1, len(questions))
    return len(questions)
