"""The town overview: everyone at the selected step, and the social graph."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from village.inspector.fmt import clip
from village.inspector.widgets.base import View, fill_table

PALETTE = ("#e06c75", "#61afef", "#98c379", "#e5c07b", "#c678dd", "#56b6c2", "#d19a66",
           "#abb2bf", "#ff79c6", "#8be9fd", "#50fa7b", "#ffb86c")


def agent_colour(agent_id: int) -> str:
    return PALETTE[(agent_id - 1) % len(PALETTE)]


class AgentsTable(View, DataTable):
    """One row per agent at the selected step: name, position, place, action, partner.

    Moving the cursor selects the agent; Enter opens it in the agent view."""

    DEFAULT_CSS = """
    AgentsTable { height: auto; max-height: 60%; }
    """

    def __init__(self, **kw):  # noqa: ANN003
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._loaded = False

    def on_mount(self) -> None:
        self.add_column("Name", key="name")
        self.add_column("x,y", key="pos")
        self.add_column("With", key="with")
        self.add_column("Place", key="place")
        self.add_column("Action", key="action")

    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        if r.last_step < r.first_step:
            return
        frame = r.state(app.step)
        partners: dict[int, str] = {}
        for cid in {a.conversation_id for a in frame.agents if a.conversation_id}:
            conv = r.conversation(cid)
            if conv:
                partners[conv["agent_a"]] = conv["b_name"] or ""
                partners[conv["agent_b"]] = conv["a_name"] or ""
        rows = {}
        for a in frame.agents:
            action = a.action or "-"
            if a.asleep:
                action = f"{action} (asleep)" if a.action and a.action != "sleeping" else "asleep"
            rows[a.id] = (Text(a.name, style=f"bold {agent_colour(a.id)}"), f"{a.x},{a.y}",
                          partners.get(a.id, "-") if a.conversation_id else "-",
                          clip(a.place or "-", 24), action)
        with self.prevent(DataTable.RowHighlighted):
            fill_table(self, ((str(aid), cells) for aid, cells in rows.items()))
            self.sync_cursor()

    def sync_cursor(self) -> None:
        aid = self.inspector.agent_id
        if aid is None:
            return
        try:
            row = self.get_row_index(str(aid))
        except Exception:  # noqa: BLE001 - a row not there yet
            return
        if self.cursor_row != row:
            self.move_cursor(row=row, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.inspector.select_agent(int(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.inspector.select_agent(int(event.row_key.value), open_view=True)


class SocialGraph(View, Vertical):
    """The relationships known at the selected step, with their weight (conversations held),
    and the graph's density 2|E| / (|V|(|V|-1)) as in the paper."""

    DEFAULT_CSS = """
    SocialGraph { height: 1fr; }
    SocialGraph > #social-title { height: 1; padding: 0 1; background: $panel; }
    SocialGraph > DataTable { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="social-title")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="social-table")
        table.add_columns("Between", "and", "Talks", "Weight", "Since", "Relation")
        yield table

    def reload(self) -> None:
        app = self.inspector
        r = app.reader
        if r.last_step < r.first_step:
            return
        edges = r.social_edges(app.step)
        n = len(r.agents)
        density = 2 * len(edges) / (n * (n - 1)) if n > 1 else 0.0
        talks = sum(e["conversations"] or 0 for e in edges)
        self.query_one("#social-title", Static).update(
            f"[b]Social graph[/b] at step {app.step}: {len(edges)} ties, density {density:.2f}, "
            f"{talks} conversations")
        table = self.query_one(DataTable)
        sel = app.agent_id

        def cells(e):  # noqa: ANN001, ANN202
            w = int(e["conversations"] or 0)
            mark = "bold" if sel in (e["a"], e["b"]) else ""
            return (Text(e["a_name"] or "?", style=f"{mark} {agent_colour(e['a'])}"),
                    Text(e["b_name"] or "?", style=f"{mark} {agent_colour(e['b'])}"), str(w),
                    Text("■" * min(w, 10) if w else "·", style="#f0aa3c"),
                    app.short_time_of_step(e["since"]), e["relation"] or e["kind"])

        fill_table(table, ((f"{e['a']}-{e['b']}", cells(e)) for e in edges))
