"""The retrieval probe: a query against the selected agent's memories as of the selected step,
scored by the agent's own code, with the three components and the total."""
from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static

from village.inspector.fmt import clip, short_time
from village.inspector.probe import ProbeResult
from village.inspector.widgets.base import BoxKeys, MemoryTable, View, box_bindings, fill_table


class ProbeView(BoxKeys, View, Vertical):
    """Type a query, Enter: the top-k records by recency + importance + relevance (each
    min-max normalised, weighted as in the run), computed by ``MemoryStream.retrieve`` on the
    stream rebuilt as of the step. Re-runs when the step or agent changes."""

    DEFAULT_CSS = """
    ProbeView > #probe-controls { height: 1; }
    ProbeView > #probe-controls > #probe-query { width: 1fr; }
    ProbeView > #probe-controls > #probe-k { width: 8; }
    ProbeView > .probe-line { height: 1; padding: 0 1; color: $text-muted; }
    ProbeView > DataTable { height: 1fr; }
    """

    BINDINGS = box_bindings("Query")
    BOX, LEAVE_TO = "#probe-query", "#probe-table"

    def __init__(self, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.result: ProbeResult | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="probe-controls"):
            yield Input(placeholder="/ a query, e.g. Valentine's Day party — Enter probes",
                        id="probe-query", compact=True)
            yield Input("10", restrict=r"\d{0,3}", id="probe-k", compact=True, tooltip="k")
        yield Static(id="probe-status", classes="probe-line")
        yield Static(id="probe-result", classes="probe-line")
        yield MemoryTable(("#", "rank"), ("Total", "total"), ("Recency", "rec"), ("Import.", "imp"),
                          ("Relev.", "rel"), ("Kind", "kind"), ("Created", "created"),
                          ("Description", "desc"), id="probe-table")

    def on_mount(self) -> None:
        self._status("/ then a query and Enter: the agent's own retrieval, as of the step.")

    def _k(self) -> int:
        try:
            return max(1, int(self.query_one("#probe-k", Input).value or 10))
        except ValueError:
            return 10

    def _status(self, extra: str | None = None) -> None:
        app = self.inspector
        w = app.probe.weights
        who = escape(app.agent.name) if app.agent else "no agent selected"
        self.query_one("#probe-status", Static).update(
            f"[b]{who}[/b] as of step {app.step} · weights: recency {w.recency:g}, importance "
            f"{w.importance:g}, relevance {w.relevance:g} · {escape(str(app.reader.run.get('embedder')))}")
        if extra is not None:
            self.query_one("#probe-result", Static).update(extra)

    def reload(self) -> None:
        query = self.query_one("#probe-query", Input).value.strip()
        if query and self.inspector.agent_id is not None:
            self.probe(query)
        else:
            self._status("/ then a query and Enter: the agent's own retrieval, as of the step.")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        query = self.query_one("#probe-query", Input).value.strip()
        if query:
            self.probe(query)
            self.query_one("#probe-table", DataTable).focus()

    def probe(self, query: str) -> None:
        app = self.inspector
        if app.agent_id is None:
            self._status("select an agent first ([ or ])")
            return
        self._status("scoring…")
        self._run(app.agent_id, app.step, query, self._k())

    @work(thread=True, exclusive=True, group="probe")
    def _run(self, agent_id: int, step: int, query: str, k: int) -> None:
        try:
            res = self.inspector.probe.run(agent_id, step, query, k)
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self.show, res)

    def _failed(self, message: str) -> None:
        self.error = message
        self._status(f"[red]probe failed:[/red] {escape(message)}")

    def show(self, res: ProbeResult) -> None:
        app = self.inspector
        if (res.agent_id, res.step) != (app.agent_id, app.step):
            return  # a probe overtaken by a move of the step or agent (its re-run follows)
        self.result, self.error = res, None
        r = self.inspector.reader
        table = self.query_one("#probe-table", DataTable)
        fill_table(table, ((str(h.record.id), (
            str(i), f"{h.score:.3f}", f"{h.recency:.3f}", f"{h.importance:.3f}", f"{h.relevance:.3f}",
            h.record.kind, short_time(r, h.record.created), h.record.description))
            for i, h in enumerate(res.hits, start=1)), keep=0)
        self._status(f"“{escape(clip(res.query, 40))}”: top {len(res.hits)} of {res.memories} records "
                     f"at {r.clock(res.step)} · Enter opens a record")
