"""One memory record: what it says, its evidence (for a reflection), what cites it, and the
recorded retrievals that returned it. Enter on a linked record opens it in turn."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from village.inspector.fmt import short_time
from village.inspector.screens.base import RecordPopup
from village.inspector.widgets.base import MemoryTable, fill_table, or_say


class MemoryScreen(RecordPopup):
    DEFAULT_CSS = """
    MemoryScreen #mem-detail { height: auto; max-height: 40%; }
    MemoryScreen .links-title { height: 1; margin-top: 1; text-style: bold; }
    MemoryScreen DataTable { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("c", "open_call", "Rating call")]

    def __init__(self, memory_id: int):
        super().__init__()
        self.memory_id = memory_id
        self.record: dict | None = None
        self.evidence: list[dict] = []
        self.cited_by: list[dict] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="popup"):
            with VerticalScroll(id="mem-detail"):
                yield Static(id="mem-detail-text")
            yield Static("Evidence (the records this one was drawn from)", classes="links-title",
                         id="ev-title")
            yield MemoryTable("Created", "Kind", "Imp", "Description", id="mem-evidence",
                              zebra_stripes=False)
            yield Static("Cited by", classes="links-title", id="cited-title")
            yield MemoryTable("Created", "Kind", "Imp", "Description", id="mem-cited",
                              zebra_stripes=False)
            yield Static("Retrieved by (recorded retrievals up to the step)", classes="links-title")
            rt = DataTable(cursor_type="row", id="mem-retrieved")
            rt.add_columns("Step", "Purpose", "Rank", "Total", "Rec", "Imp", "Rel", "Query")
            yield rt
        yield Footer()

    def load(self) -> None:
        app = self.app
        r = app.reader  # type: ignore[attr-defined]
        step = app.step  # type: ignore[attr-defined]
        m = or_say(self, r.memory(self.memory_id), "#mem-detail-text",
                   f"Memory {self.memory_id} is not in this run.")
        if m is None:
            return
        self.record = m
        self.call_id = m.get("call_id")
        owner = r.agent(m["agent_id"]).name
        acc = next((x.last_accessed for x in app.memory_rows(m["agent_id"], max(step, m["step"]))  # type: ignore[attr-defined]
                    if x.id == m["id"]), None)
        rated = r.llm_call(m["call_id"]) if m.get("call_id") else None
        later = f" (rated at step {rated['step']})" if rated and rated["step"] > step else ""
        self.query_one("#mem-detail-text", Static).update(
            f"[b]{escape(m['kind'])}[/b] #{m['id']} of [b]{escape(str(owner))}[/b] · created "
            f"{short_time(r, m['created'])} (step {m['step']}) · importance "
            f"{m['importance'] if m['importance'] is not None else 'not rated'}{later} · last access as of step "
            f"{step}: {short_time(r, acc) if acc else 'never retrieved'}"
            + (f" · rated by call {m['call_id']} (c)" if m.get("call_id") else "")
            + f"\n\n{escape(m['description'])}")
        self.evidence = m.get("evidence") or []
        self.cited_by = r.cited_by(self.memory_id, until_step=max(step, m["step"]))
        for table_id, title_id, rows, title in (
                ("#mem-evidence", "#ev-title", self.evidence, "Evidence (the records this one was drawn from)"),
                ("#mem-cited", "#cited-title", self.cited_by, "Cited by (reflections drawn from this record)")):
            fill_table(self.query_one(table_id, DataTable),
                       ((str(e["id"]), (short_time(r, e["created"]), e["kind"], str(e["importance"]),
                                        e["description"])) for e in rows))
            self.query_one(title_id, Static).update(f"{title}: {len(rows) or 'none'}")
        fill_table(self.query_one("#mem-retrieved", DataTable),
                   ((str(i), (str(h["step"]), h["purpose"], str(h["rank"] + 1), f"{h['score']:.3f}",
                              f"{h['recency']:.2f}", f"{h['importance']:.2f}", f"{h['relevance']:.2f}",
                              h["query"])) for i, h in enumerate(r.memory_retrievals(self.memory_id, until_step=step))))
        if self.evidence:
            self.query_one("#mem-evidence", DataTable).focus()
