"""One memory record: what it says, its evidence (for a reflection), what cites it, and the
recorded retrievals that returned it. Enter on a linked record opens it in turn."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from village.inspector.fmt import clip, short_time


class MemoryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    MemoryScreen { align: center middle; }
    MemoryScreen > Vertical { width: 96%; height: 94%; border: round $accent; background: $panel;
                              padding: 0 1; }
    MemoryScreen #mem-detail { height: auto; max-height: 40%; }
    MemoryScreen .links-title { height: 1; margin-top: 1; text-style: bold; }
    MemoryScreen DataTable { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close"),
                Binding("c", "open_call", "Rating call")]

    def __init__(self, memory_id: int):
        super().__init__()
        self.memory_id = memory_id
        self.record: dict | None = None
        self.evidence: list[dict] = []
        self.cited_by: list[dict] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="mem-detail"):
                yield Static(id="mem-detail-text")
            yield Static("Evidence (the records this one was drawn from)", classes="links-title",
                         id="ev-title")
            ev = DataTable(cursor_type="row", id="mem-evidence")
            ev.add_columns("Created", "Kind", "Imp", "Description")
            yield ev
            yield Static("Cited by", classes="links-title", id="cited-title")
            cb = DataTable(cursor_type="row", id="mem-cited")
            cb.add_columns("Created", "Kind", "Imp", "Description")
            yield cb
            yield Static("Retrieved by (recorded retrievals up to the step)", classes="links-title")
            rt = DataTable(cursor_type="row", id="mem-retrieved")
            rt.add_columns("Step", "Purpose", "Rank", "Total", "Rec", "Imp", "Rel", "Query")
            yield rt

    def on_mount(self) -> None:
        app = self.app
        r = app.reader  # type: ignore[attr-defined]
        step = app.step  # type: ignore[attr-defined]
        m = r.memory(self.memory_id)
        text = self.query_one("#mem-detail-text", Static)
        if m is None:
            text.update(f"Memory {self.memory_id} is not in this run.")
            return
        self.record = m
        owner = r._name(m["agent_id"]) if hasattr(r, "_name") else m["agent_id"]
        acc = next((x.last_accessed for x in app.memory_rows(m["agent_id"], max(step, m["step"]))  # type: ignore[attr-defined]
                    if x.id == m["id"]), None)
        text.update(
            f"[b]{escape(m['kind'])}[/b] #{m['id']} of [b]{escape(str(owner))}[/b] · created "
            f"{short_time(r, m['created'])} (step {m['step']}) · importance "
            f"{m['importance'] if m['importance'] is not None else 'unrated'} · last access as of step "
            f"{step}: {short_time(r, acc) if acc else 'never retrieved'}"
            + (f" · rated by call {m['call_id']} (c)" if m.get("call_id") else "")
            + f"\n\n{escape(m['description'])}")
        self.evidence = m.get("evidence") or []
        self.cited_by = r.cited_by(self.memory_id, until_step=max(step, m["step"]))
        for table_id, title_id, rows, title in (
                ("#mem-evidence", "#ev-title", self.evidence, "Evidence (the records this one was drawn from)"),
                ("#mem-cited", "#cited-title", self.cited_by, "Cited by (reflections drawn from this record)")):
            table = self.query_one(table_id, DataTable)
            for e in rows:
                table.add_row(short_time(r, e["created"]), e["kind"], str(e["importance"]),
                              clip(e["description"], 200), key=str(e["id"]))
            self.query_one(title_id, Static).update(f"{title}: {len(rows) or 'none'}")
        rt = self.query_one("#mem-retrieved", DataTable)
        for h in r.memory_retrievals(self.memory_id, until_step=step):
            rt.add_row(str(h["step"]), h["purpose"], str(h["rank"]), f"{h['score']:.3f}",
                       f"{h['recency']:.2f}", f"{h['importance']:.2f}", f"{h['relevance']:.2f}",
                       clip(h["query"], 80))
        if self.evidence:
            self.query_one("#mem-evidence", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id in ("mem-evidence", "mem-cited") and event.row_key.value is not None:
            self.app.open_memory(int(event.row_key.value))  # type: ignore[attr-defined]

    def action_open_call(self) -> None:
        if self.record and self.record.get("call_id"):
            self.app.open_call(int(self.record["call_id"]))  # type: ignore[attr-defined]
