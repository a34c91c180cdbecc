"""Who the selected agent is, and where they stand at the selected step."""
from __future__ import annotations

from collections import Counter

from rich.markup import escape
from textual.containers import VerticalScroll
from textual.widgets import Static

from village.inspector.widgets.base import AgentView
from village.replay import Agent


class IdentityView(AgentView, VerticalScroll):
    """Identity, traits and routine from the scenario; state, memory counts and
    relationships as of the selected step."""

    DEFAULT_CSS = """
    IdentityView { padding: 0 1; }
    IdentityView > Static { width: 1fr; }
    """

    NOTE = "#identity-text"
    NO_AGENT = "No agent selected: pick one in the town view (1) or with \\[ and ]."

    def compose(self):  # noqa: ANN201
        yield Static(id="identity-text")

    def show(self, a: Agent) -> None:
        app = self.inspector
        r = app.reader
        res = next((x for x in r.scenario.residents if x.name == a.name), None)
        lines = [f"[b]{escape(a.name)}[/b], {a.age}  ·  home: {escape(a.home or '-')}",
                 f"[b]Traits[/b]: {escape(', '.join(a.traits) or '-')}",
                 f"[b]Background[/b]: {escape(a.background or '-')}",
                 f"[b]Currently[/b]: {escape(a.currently or '-')}",
                 f"[b]Routine[/b]: {escape(a.routine or '-')}"]
        if res is not None:
            lines.append(f"[b]Day[/b]: wakes {res.wake:%H:%M}, sleeps {res.sleep:%H:%M}  ·  vision "
                         f"{res.vision_radius} tiles, attention {res.attention_bandwidth}, retention "
                         f"{res.retention}")
        if r.last_step >= r.first_step:
            st = r.state(app.step).agent(a.id)
            lines.append("")
            lines.append(f"[b]At step {app.step}[/b] ({r.clock(app.step)}): at {escape(st.place or '-')}"
                         f" ({st.x},{st.y}), {escape(st.action or '-')}"
                         f"{' — asleep' if st.asleep else ''}"
                         + (f", saying “{escape(st.utterance)}”" if st.utterance else ""))
            mems = r.memories(a.id, until_step=app.step)
            kinds = Counter(m["kind"] for m in mems)
            lines.append(f"[b]Memories[/b]: {len(mems)}  (" + ", ".join(
                f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
            convs = [c for c in r.conversations(r.first_step, app.step)
                     if a.id in (c["agent_a"], c["agent_b"])]
            lines.append(f"[b]Conversations[/b]: {len(convs)}")
            ties = [e for e in r.social_edges(app.step) if a.id in (e["a"], e["b"])]
            if ties:
                lines.append("[b]Relationships[/b]:")
                for e in ties:
                    other = e["b_name"] if e["a"] == a.id else e["a_name"]
                    lines.append(f"  {escape(other or '?')}: {escape(e['relation'] or e['kind'])}"
                                 f" ({e['conversations'] or 0} conversations)")
        self.query_one("#identity-text", Static).update("\n".join(lines))
