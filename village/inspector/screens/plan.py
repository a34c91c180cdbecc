"""One plan entry and why it was made: its parent, the model call behind it and the memories
retrieved for that call, with their score components."""
from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from village.inspector.fmt import clip, span
from village.inspector.screens.base import RecordPopup
from village.inspector.widgets.base import MemoryTable, fill_table, or_say


class PlanScreen(RecordPopup):
    DEFAULT_CSS = """
    PlanScreen #plan-detail { height: auto; }
    PlanScreen #plan-hits-title { height: 1; margin-top: 1; text-style: bold; }
    PlanScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("c", "open_call", "Model call")]

    def __init__(self, plan_id: int):
        super().__init__()
        self.plan_id = plan_id
        self.entry: dict | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="popup"):
            yield Static(id="plan-detail")
            yield Static("Retrieved for it", id="plan-hits-title")
            yield MemoryTable("#", "Total", "Rec", "Imp", "Rel", "Kind", "Memory", id="plan-hits",
                              zebra_stripes=False)
        yield Footer()

    def load(self) -> None:
        r = self.app.reader  # type: ignore[attr-defined]
        p = or_say(self, r.plan_entry(self.plan_id), "#plan-detail",
                   f"Plan entry {self.plan_id} is not in this run.")
        if p is None:
            return
        self.entry = p
        chain = []
        parent = r.plan_entry(p["parent_id"]) if p.get("parent_id") else None
        q = parent
        while q is not None:
            chain.append(q)
            q = r.plan_entry(q["parent_id"]) if q.get("parent_id") else None
        self.call_id = p.get("call_id") or next((c["call_id"] for c in chain if c.get("call_id")), None)
        rid = p.get("retrieval_id") or next((c["retrieval_id"] for c in chain if c.get("retrieval_id")), None)
        lines = [f"[b]{escape(p['level'])}[/b] {span(r, p['start'], p['end'])}: [b]{escape(p['description'])}[/b]",
                 f"at {escape(p['place'] or '?')} · made at step {p['step']} ({r.clock(p['step'])})"]
        for c in chain:
            lines.append(f"  part of {c['level']} {span(r, c['start'], c['end'])}: {escape(clip(c['description'], 70))}")
        if not p.get("parent_id") and p["level"] == "action":
            lines.append("  [yellow]a revision (after a reaction or a conversation), not part of an hour block[/yellow]")
        if self.call_id:
            call = r.llm_call(self.call_id)
            if call:
                lines.append(f"model call {self.call_id} ({call['purpose']}, step {call['step']}; c opens it): "
                             f"{escape(clip(call.get('response'), 160))}")
        else:
            lines.append("no model call recorded for it")
        self.query_one("#plan-detail", Static).update("\n".join(lines))
        table = self.query_one("#plan-hits", DataTable)
        ret = r.retrieval(rid) if rid else None
        title = self.query_one("#plan-hits-title", Static)
        if ret is None:
            title.update("Retrieved for it: no retrieval recorded")
            return
        title.update(f"Retrieved for it ({ret['purpose']}, step {ret['step']}): “{escape(clip(ret['query'], 60))}”")
        fill_table(table, ((str(h["memory_id"]), (
            str(h["rank"] + 1), f"{h['score']:.3f}", f"{h['recency']:.2f}", f"{h['importance']:.2f}",
            f"{h['relevance']:.2f}", h.get("kind") or "?", h.get("description") or "?"))
            for h in ret["hits"]))
        table.focus()
