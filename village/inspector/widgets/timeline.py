"""The timeline: where in the run the inspector is, as a line of text and a bar to click."""
from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

from village.inspector.widgets.base import View


class Timeline(View, Widget):
    """Two lines: the step, its game time, the selected agent and the run's status; then a
    bar of the run with the selected step marked (midnights as ┃). Click the bar to seek."""

    DEFAULT_CSS = """
    Timeline { height: 2; padding: 0 1; background: $boost; }
    """

    def reload(self) -> None:
        self.refresh()

    def render(self) -> Text:
        app = self.inspector
        r = app.reader
        out = Text(no_wrap=True, overflow="ellipsis")
        if r.last_step < r.first_step:
            out.append("no steps recorded yet", "bold")
            out.append(" · waiting for the run" if app.follow else "")
            return out
        step = app.step
        out.append(f"step {step}", "bold")
        out.append(f"/{r.last_step} ", "dim")
        out.append(r.clock(step), "bold cyan")
        agent = app.agent
        if agent is not None:
            out.append(" · ")
            out.append(agent.name, "bold yellow")
        status = r.status or "?"
        out.append(f" · {status}", "green" if status == "finished" else
                   ("yellow" if status == "running" else "red"))
        if app.follow:
            out.append(" · following", "bold magenta")
        out.append("\n")
        out.append_text(self._bar(max(10, self.content_size.width)))
        return out

    def _bar(self, w: int) -> Text:
        app = self.inspector
        r = app.reader
        first, last = r.first_step, max(r.last_step, r.first_step)
        span = max(1, last - first)
        cur = int((app.step - first) / span * (w - 1))
        chars = ["━" if i <= cur else "─" for i in range(w)]
        per_day = 86400 // r.seconds_per_step
        t0 = r.game_time(first)
        s = first + (86400 - (t0.hour * 3600 + t0.minute * 60 + t0.second)) // r.seconds_per_step
        while s <= last:
            chars[int((s - first) / span * (w - 1))] = "┃"
            s += per_day
        chars[cur] = "●"
        bar = Text()
        bar.append("".join(chars[:cur]), "bold #f0aa3c")
        bar.append(chars[cur], "bold white")
        bar.append("".join(chars[cur + 1:]), "#6a6c7a")
        return bar

    def on_click(self, event: events.Click) -> None:
        r = self.inspector.reader
        if event.y != 1 or r.last_step < r.first_step:
            return
        w = max(10, self.content_size.width)
        x = event.x - self.gutter.left
        f = min(max(x / (w - 1), 0.0), 1.0)
        self.inspector.set_step(int(round(r.first_step + f * (r.last_step - r.first_step))))
