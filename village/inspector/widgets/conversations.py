"""The selected agent's conversations up to the selected step, with transcripts."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from village.inspector.fmt import clip, short_time
from village.inspector.widgets.base import View, fill_table


class ConversationView(View, Vertical):
    """Conversations (newest first); the highlighted one's transcript below, as far as it
    had got at the selected step."""

    DEFAULT_CSS = """
    ConversationView > DataTable { height: auto; max-height: 40%; }
    ConversationView > #conv-transcript { height: 1fr; padding: 0 1; background: $panel; }
    """

    def compose(self) -> ComposeResult:
        table = DataTable(cursor_type="row", zebra_stripes=True, id="conv-table")
        table.add_columns("Started", "With", "Lines", "Ended by", "Place")
        yield table
        with VerticalScroll(id="conv-transcript"):
            yield Static(id="conv-text")

    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        table = self.query_one("#conv-table", DataTable)
        table.clear()
        if app.agent_id is None or r.last_step < r.first_step:
            self.query_one("#conv-text", Static).update("No agent selected.")
            return
        aid = app.agent_id
        convs = [c for c in r.conversations(r.first_step, app.step) if aid in (c["agent_a"], c["agent_b"])]
        def cells(c):  # noqa: ANN001, ANN202
            other = c["b_name"] if c["agent_a"] == aid else c["a_name"]
            ongoing = c["step_end"] is None or c["step_end"] > app.step
            return (short_time(r, c["time"]), other or "?", str(c["utterances"] or 0),
                    "(going on)" if ongoing else clip(c["ended_by"], 18), c["place"] or "?")

        fill_table(table, ((str(c["id"]), cells(c)) for c in reversed(convs)))
        if not convs:
            self.query_one("#conv-text", Static).update(
                f"{escape(app.agent.name if app.agent else '?')} has held no conversation by step {app.step}.")
        else:
            table.move_cursor(row=0, animate=False)
            self.show_transcript(convs[-1]["id"])

    def show_transcript(self, conversation_id: int) -> None:
        app = self.inspector
        r = app.reader
        c = r.conversation(conversation_id)
        if c is None:
            return
        lines = [f"[b]{escape(c['a_name'] or '?')} and {escape(c['b_name'] or '?')}[/b] at "
                 f"{escape(c['place'] or '?')}, from {r.clock(c['step_start'])}"]
        for u in c["transcript"]:
            if u.step > app.step:
                lines.append(f"[dim]… {len(c['transcript']) - u.idx} more line(s) after step {app.step}[/dim]")
                break
            lines.append(f"[b]{escape(u.speaker)}[/b] [dim]({short_time(r, r.game_time(u.step))})[/dim]: "
                         f"{escape(u.text)}")
        else:
            if c["step_end"] is not None and c["step_end"] <= app.step:
                lines.append(f"[dim]ended by {escape(c['ended_by'] or '?')} at step {c['step_end']}[/dim]")
        self.query_one("#conv-text", Static).update("\n".join(lines))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_transcript(int(event.row_key.value))
