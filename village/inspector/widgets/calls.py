"""Every model call up to the selected step: filter by agent and purpose, totals by purpose,
Enter opens a call (prompt, response, tokens, latency, cache, retries, validation, fallback)."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Select, Static

from village.inspector.fmt import call_flags, short_time
from village.inspector.widgets.base import View

PURPOSES = ("importance", "plan", "react", "converse", "reflect", "interview")
# Fixed, so the totals do not reflow as rows arrive (a table sizes a column to the
# longest cell it has seen; its header may be drawn before the rows).
PURPOSE_WIDTH = 12
LIMIT = 500


class CallsView(View, Vertical):
    """Totals by purpose on top, the calls (newest first) below."""

    DEFAULT_CSS = """
    CallsView > #calls-controls { height: 1; }
    CallsView > #calls-controls > Select { width: 1fr; }
    CallsView > #calls-totals { height: auto; max-height: 9; }
    CallsView > #calls-status { height: 1; padding: 0 1; color: $text-muted; }
    CallsView > #calls-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("a", "toggle_agent", "Agent filter"),
        Binding("t", "cycle_purpose", "Purpose"),
    ]

    def compose(self) -> ComposeResult:
        with Horizontal(id="calls-controls"):
            yield Select([], prompt="all agents", id="calls-agent", compact=True)
            yield Select([(p, p) for p in PURPOSES], prompt="all purposes", id="calls-purpose",
                         compact=True)
        totals = DataTable(cursor_type="none", id="calls-totals")
        totals.add_column("Purpose", width=PURPOSE_WIDTH)
        totals.add_columns("Calls", "Cache", "Tok in", "Tok out", "ms", "Retry", "Inval",
                           "Fallbk", "Err")
        yield totals
        yield Static(id="calls-status")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="calls-table")
        table.add_columns("Id", "Step", "Time", "Agent", "Purpose", "In", "Out", "ms", "Flags")
        yield table

    def on_mount(self) -> None:
        self.set_agents()

    def set_agents(self) -> None:
        """The agent filter's choices (again when a followed run gets its agents)."""
        r = self.inspector.reader
        with self.prevent(Select.Changed):
            self.query_one("#calls-agent", Select).set_options(
                [(a.name, a.id) for a in r.agents] + [("(no agent)", 0)])

    # ------------------------------------------------------------------ filters
    def filters(self) -> tuple[int | None, str | None]:
        a = self.query_one("#calls-agent", Select).value
        p = self.query_one("#calls-purpose", Select).value
        return (a if isinstance(a, int) else None), (p if isinstance(p, str) else None)

    def set_filters(self, agent_id: int | None = None, purpose: str | None = None) -> None:
        with self.prevent(Select.Changed):
            self.query_one("#calls-agent", Select).value = Select.NULL if agent_id is None else agent_id
            self.query_one("#calls-purpose", Select).value = Select.NULL if purpose is None else purpose
        self.reload()

    def action_toggle_agent(self) -> None:
        agent, purpose = self.filters()
        sel = self.inspector.agent_id
        self.set_filters(None if agent is not None or sel is None else sel, purpose)

    def action_cycle_purpose(self) -> None:
        agent, purpose = self.filters()
        order: list[str | None] = [None, *PURPOSES]
        self.set_filters(agent, order[(order.index(purpose) + 1) % len(order)])

    def on_select_changed(self, event: Select.Changed) -> None:
        self.reload()

    # ------------------------------------------------------------------ data
    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        agent, purpose = self.filters()
        totals = self.query_one("#calls-totals", DataTable)
        totals.clear()
        table = self.query_one("#calls-table", DataTable)
        table.clear()
        if r.last_step < r.first_step:
            return
        rows = r.llm_call_totals(step_to=app.step, agent_id=agent)
        keys = ("calls", "cached", "prompt_tokens", "completion_tokens", "latency_ms", "retries",
                "invalid", "fallbacks", "errors")
        sums = {k: sum(x[k] or 0 for x in rows) for k in keys}
        for x in [*rows, {"purpose": "all", **sums}] if rows else []:
            style = "bold" if x["purpose"] == "all" else ("reverse" if x["purpose"] == purpose else "")
            avg = (x["latency_ms"] or 0) / x["calls"] if x["calls"] else 0
            cells = [x["purpose"], x["calls"], x["cached"], x["prompt_tokens"], x["completion_tokens"],
                     f"{avg:.0f}", x["retries"], x["invalid"] or 0, x["fallbacks"], x["errors"] or 0]
            totals.add_row(*(Text(str(c), style=style) for c in cells))
        calls = r.llm_call_index(step_to=app.step, agent_id=agent, purpose=purpose, limit=LIMIT)
        for c in calls:
            table.add_row(str(c["id"]), str(c["step"]), short_time(r, c["time"]), c["agent"] or "-",
                          c["purpose"], str(c["prompt_tokens"] or 0), str(c["completion_tokens"] or 0),
                          f"{c['latency_ms'] or 0:.0f}", call_flags(c), key=str(c["id"]))
        who = r.agent(agent).name if agent else ("no agent" if agent == 0 else "all agents")
        self.query_one("#calls-status", Static).update(Text(
            f"{who} · {purpose or 'all purposes'} · up to step {app.step} · "
            f"{'newest ' + str(LIMIT) if len(calls) == LIMIT else len(calls)} calls · "
            "flags: C cached R retried I invalid F fallback E error · Enter opens"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "calls-table" and event.row_key.value is not None:
            self.inspector.open_call(int(event.row_key.value))
