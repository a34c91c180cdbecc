"""The selected agent's plans on the selected step's day: the day plan, its hour blocks and,
under the hour in force, the actions; Enter opens an entry with the model call and the
memories retrieved behind it."""
from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from village.inspector.fmt import clip, span
from village.inspector.widgets.base import View, fill_table


class PlanView(View, Vertical):
    """Day plan ▸ hour blocks ▸ actions of the current hour (▶ marks what is in force)."""

    DEFAULT_CSS = """
    PlanView > #plan-now { height: auto; max-height: 3; padding: 0 1; background: $panel; }
    PlanView > DataTable { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="plan-now")
        table = DataTable(cursor_type="row", id="plan-table")
        table.add_columns(" ", "When", "Level", "Made", "Place", "Plan")
        yield table

    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        table = self.query_one("#plan-table", DataTable)
        now_text = self.query_one("#plan-now", Static)
        table.clear()
        out: list[tuple[str, tuple]] = []
        if app.agent_id is None or r.last_step < r.first_step:
            now_text.update("No agent selected.")
            return
        aid, step = app.agent_id, app.step
        plans = r.plans(aid, step)
        st = r.state(step).agent(aid)
        cur_h = plans.hour["id"] if plans.hour else None
        cur_a = plans.action["id"] if plans.action else None
        lines = [f"[b]Now[/b] ({r.clock(step)}): {escape(st.action or '-')}"
                 f" at {escape(st.action_place or st.place or '-')}"]
        if plans.action:
            lines[0] += f" · action {span(r, plans.action['start'], plans.action['end'])}"
        if plans.hour:
            lines.append(f"[b]Hour[/b] {span(r, plans.hour['start'], plans.hour['end'])}: "
                         f"{escape(clip(plans.hour['description'], 60))} at {escape(plans.hour['place'] or '?')}")
        now_text.update("\n".join(lines))

        hours = _latest_per_start(r.plan_entries(aid, step, level="hour"))
        actions = r.plan_entries(aid, step, level="action")
        now_iso = r.game_time(step).isoformat(timespec="seconds")

        def add(p: dict, depth: int, current: bool) -> None:
            mark = Text("▶", style="bold green") if current else Text(" ")
            indent = "\u00a0\u00a0" * depth  # (plain spaces at the start of a cell are dropped)
            style = "bold" if current else ("dim" if p["end"] and p["end"] <= now_iso else "")
            out.append((str(p["id"]), (mark, indent + span(r, p["start"], p["end"]),
                                       Text(p["level"], style=style), str(p["step"]),
                                       clip(p["place"], 26), Text(p["description"] or "", style=style))))

        for d in plans.day:
            in_day = d["start"] <= now_iso < d["end"]
            add(d, 0, in_day)
            for h in hours:
                if not d["start"] <= h["start"] < d["end"]:
                    continue
                add(h, 1, h["id"] == cur_h)
                if h["id"] == cur_h or (h["start"] <= now_iso < h["end"]):
                    for a in _latest_per_start(
                            [a for a in actions if h["start"] <= a["start"] < h["end"]]):
                        add(a, 2, a["id"] == cur_a)
        if not plans.day:
            for a in _latest_per_start(actions):
                add(a, 0, a["id"] == cur_a)
        target = next((i for i, (k, _) in enumerate(out) if k == str(cur_a)), 0)
        fill_table(table, out, keep=target)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.inspector.open_plan(int(event.row_key.value))


def _latest_per_start(entries: list[dict]) -> list[dict]:
    """Of entries starting at the same time keep the latest revision; in start order."""
    best: dict[str, dict] = {}
    for e in entries:
        cur = best.get(e["start"])
        if cur is None or (e["step"], e["id"]) > (cur["step"], cur["id"]):
            best[e["start"]] = e
    return sorted(best.values(), key=lambda e: e["start"])
