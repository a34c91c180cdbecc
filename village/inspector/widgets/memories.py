"""The selected agent's memory stream as of the selected step: filter, search, sort, open."""
from __future__ import annotations

from collections import Counter

from rich.markup import escape

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Select, Static

from memory.stream import KINDS
from village.inspector.fmt import short_time
from village.inspector.widgets.base import BoxKeys, MemoryTable, View, box_bindings, fill_table

SORTS = (("newest", "created"), ("importance", "importance"), ("last access", "accessed"))
MAX_ROWS = 2000


class MemoryView(BoxKeys, View, Vertical):
    """Records with kind, created, importance, last access (as of the step) and evidence
    counts; filter by kind, search the text, sort; Enter opens a record (its evidence, what
    cites it, when it was retrieved)."""

    DEFAULT_CSS = """
    MemoryView > #mem-controls { height: 1; }
    MemoryView > #mem-controls > Input { width: 1fr; }
    MemoryView > #mem-controls > Select { width: 18; }
    MemoryView > #mem-status { height: 1; padding: 0 1; color: $text-muted; }
    MemoryView > DataTable { height: 1fr; }
    """
    BINDINGS = [
        *box_bindings("Search"),
        Binding("t", "cycle_kind", "Type"),
        Binding("s", "cycle_sort", "Sort"),
    ]
    BOX, LEAVE_TO = "#mem-search", "#mem-table"

    def __init__(self, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self._cited: Counter[int] = Counter()

    def compose(self) -> ComposeResult:
        with Horizontal(id="mem-controls"):
            yield Input(placeholder="search text… (/)", id="mem-search", compact=True)
            yield Select([(k, k) for k in KINDS], prompt="any type", id="mem-kind", compact=True)
            yield Select(SORTS, value="created", allow_blank=False, id="mem-sort", compact=True)
        yield Static(id="mem-status")
        yield MemoryTable(("Created", "created"), ("Kind", "kind"), ("Imp", "imp"), ("Accessed", "acc"),
                          ("Ev", "ev"), ("Description", "desc"), id="mem-table")

    # ------------------------------------------------------------------ filters
    def action_cycle_kind(self) -> None:
        sel = self.query_one("#mem-kind", Select)
        order = [Select.NULL, *KINDS]
        cur = sel.value if sel.value in KINDS else Select.NULL
        sel.value = order[(order.index(cur) + 1) % len(order)]

    def action_cycle_sort(self) -> None:
        sel = self.query_one("#mem-sort", Select)
        keys = [v for _, v in SORTS]
        sel.value = keys[(keys.index(sel.value) + 1) % len(keys)]  # type: ignore[arg-type]

    def on_input_changed(self, event: Input.Changed) -> None:
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#mem-table", DataTable).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.reload()

    def set_filters(self, kind: str | None = None, search: str | None = None,
                    sort: str | None = None) -> None:
        """Set the filters at once (kind None = any)."""
        with self.prevent(Input.Changed, Select.Changed):
            if search is not None:
                self.query_one("#mem-search", Input).value = search
            sel = self.query_one("#mem-kind", Select)
            sel.value = kind if kind else Select.NULL
            if sort is not None:
                self.query_one("#mem-sort", Select).value = sort
        self.reload()

    # ------------------------------------------------------------------ data
    def rows(self) -> tuple[list, int]:
        """The records to show (MemoryRow) and how many the agent had at the step."""
        app = self.inspector
        r = app.reader
        self._cited = Counter()
        if app.agent_id is None or r.last_step < r.first_step:
            return [], 0
        rows = app.memory_rows(app.agent_id, app.step)
        total = len(rows)
        self._cited = Counter(e for m in rows for e in m.evidence)
        kind = self.query_one("#mem-kind", Select).value
        if kind in KINDS:
            rows = [m for m in rows if m.kind == kind]
        words = self.query_one("#mem-search", Input).value.lower().split()
        if words:
            rows = [m for m in rows if all(w in m.description.lower() for w in words)]
        sort = self.query_one("#mem-sort", Select).value
        if sort == "importance":
            rows.sort(key=lambda m: (-(m.importance or 0), -m.id))
        elif sort == "accessed":
            rows.sort(key=lambda m: (m.last_accessed or m.created, m.id), reverse=True)
        else:
            rows.sort(key=lambda m: (m.created, m.id), reverse=True)
        return rows, total

    def reload(self) -> None:
        app = self.inspector
        rows, total = self.rows()
        table = self.query_one("#mem-table", DataTable)
        r = app.reader

        def cells(m):  # noqa: ANN001, ANN202
            ev = (f"←{len(m.evidence)}" if m.evidence else "") + (
                f"→{self._cited[m.id]}" if self._cited.get(m.id) else "")
            return (short_time(r, m.created), m.kind, "?" if m.importance is None else str(m.importance),
                    short_time(r, m.last_accessed) if m.last_accessed else "-", ev or "·",
                    m.description)

        fill_table(table, ((str(m.id), cells(m)) for m in rows[:MAX_ROWS]), keep=table.cursor_row)
        who = escape(app.agent.name) if app.agent else "no agent selected"
        shown = f"{len(rows)} of {total}" if len(rows) != total else f"{total}"
        more = f" (first {MAX_ROWS} shown)" if len(rows) > MAX_ROWS else ""
        self.query_one("#mem-status", Static).update(
            f"{who}: {shown} records as of step {app.step}{more} · Ev: ←n cites n, →n cited by n ·"
            " Imp ? = not rated yet · Enter opens")
