"""The selected agent's reflections up to the selected step, each with its evidence."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from village.inspector.fmt import short_time
from village.inspector.widgets.base import MemoryTable, View, fill_table


class ReflectionView(View, Vertical):
    """Reflections (newest first); the highlighted one's evidence below; Enter opens it."""

    DEFAULT_CSS = """
    ReflectionView > DataTable { height: 1fr; }
    ReflectionView > #refl-evidence { height: 1fr; padding: 0 1; background: $panel; }
    """

    def compose(self) -> ComposeResult:
        yield MemoryTable("Created", "Imp", "Ev", "Insight", id="refl-table")
        with VerticalScroll(id="refl-evidence"):
            yield Static(id="refl-text")

    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        table = self.query_one("#refl-table", DataTable)
        keep = table.cursor_row
        table.clear()
        text = self.query_one("#refl-text", Static)
        if app.agent_id is None or r.last_step < r.first_step:
            text.update("No agent selected.")
            return
        rows = [m for m in app.memory_rows(app.agent_id, app.step) if m.kind == "reflection"]
        rows.sort(key=lambda m: (m.created, m.id), reverse=True)
        self._by_id = {m.id: m for m in app.memory_rows(app.agent_id, app.step)}
        fill_table(table, ((str(m.id), (short_time(r, m.created), str(m.importance or "?"),
                                         str(len(m.evidence)), m.description)) for m in rows), keep=keep)
        if rows:
            self.show_evidence(rows[min(max(keep, 0), len(rows) - 1)].id)
        else:
            text.update(f"{escape(app.agent.name if app.agent else '?')} has not reflected by step {app.step}.")

    def show_evidence(self, memory_id: int) -> None:
        m = self._by_id.get(memory_id)
        if m is None:
            return
        r = self.inspector.reader
        lines = [f"[b]Because of[/b] ({len(m.evidence)} records):"]
        for eid in m.evidence:
            e = self._by_id.get(eid)
            if e is None:
                lines.append(f"  #{eid} (not found)")
                continue
            lines.append(f"  [dim]{short_time(r, e.created)} {e.kind} ({e.importance})[/dim] "
                         f"{escape(e.description)}")
        self.query_one("#refl-text", Static).update("\n".join(lines))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_evidence(int(event.row_key.value))
