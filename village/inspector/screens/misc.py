"""Go to a step or time; the keys."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from village.replay import ReplayError

HELP = """\
[b]Village inspector[/b] — every key (the footer shows the common ones)

[b]Views[/b]          1 town · 2 agent · 3 retrieval probe · 4 model calls · 5 interview
[b]Agent tabs[/b]     i identity · m memories · p plans · c conversations · r reflections
[b]Time[/b]           , . one step back / on · < > ten game minutes · g go to a step or time
               f follow the newest step (a run still being written) · click the timeline
[b]Agent[/b]          [ ] previous / next agent · Enter on the town table opens the agent
[b]Lists[/b]          ↑ ↓ PgUp PgDn move · Enter opens (a record, a plan, a call) · Esc closes
               Tab / Shift+Tab move between boxes
[b]Memories[/b]       / search · t cycle type · s cycle sort (newest, importance, last access)
[b]Calls[/b]          a all agents ↔ the selected one · t cycle purpose
[b]Pop-ups[/b]        c the model call behind a record or plan · s a call's JSON schema
[b]Probe[/b]          type a query, Enter: top-k with recency, importance, relevance, total
[b]Interview[/b]      type a question, Enter: stored in the run's interviews table only
               q or Ctrl+Q quits · ? this help (Esc closes)
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 80; max-width: 100%; height: auto; max-height: 100%;
                          border: round $accent; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP)


class GotoScreen(ModalScreen[int | None]):
    """Returns the step for a step number ("120", "-1") or a game time ("17:00", "day2 17:00")."""

    DEFAULT_CSS = """
    GotoScreen { align: center middle; }
    GotoScreen > Vertical { width: 64; max-width: 100%; height: auto; border: round $accent;
                            background: $panel; padding: 0 1; }
    GotoScreen #goto-error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Go to a step (120, -1 for the last) or a game time (17:00, day2 17:00, "
                         "2023-02-14T17:00):")
            yield Input(id="goto-input")
            yield Static(id="goto-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            step = self.app.reader.resolve(event.value.strip())  # type: ignore[attr-defined]
        except ReplayError as exc:
            msg = str(exc)
            path = str(self.app.reader.path)  # type: ignore[attr-defined]
            self.query_one("#goto-error", Static).update(msg[len(path) + 2:] if msg.startswith(path) else msg)
            return
        self.dismiss(step)
