"""Go to a step or time; the keys."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from village.replay import ReplayError

HELP = """\
[b]Village inspector[/b] — keys (the footer shows the common ones)
[b]Views[/b]    1 town  2 agent  3 probe  4 model calls  5 interview
[b]Agent[/b]    i identity  m memories  p plans  c chats  r reflections
         \\[ ] previous / next agent · Enter on a town row opens it
[b]Time[/b]     , . one step back / on · < > ten game minutes
         g go to a step or a game time · click the timeline
         f follow the newest step of a run still being written
[b]Lists[/b]    ↑ ↓ PgUp PgDn move · Enter opens a record, plan or call
         Tab / Shift+Tab next / previous box · Esc leaves a text box
         or closes a pop-up
[b]Memories[/b] / search · t cycle type · s cycle sort (newest, importance,
         last access) · Ev: ←n cites n records, →n cited by n
[b]Calls[/b]    a all agents ↔ the selected one · t cycle purpose; flags:
         C cached, R retried, I invalid, F fallback used, E error
[b]Pop-ups[/b]  c the model call behind a record or plan · s a call's schema
[b]Probe[/b]    / query Enter: the top k by the agent's own retrieval as of
         the step: recency, importance, relevance (each 0–1), total
[b]Ask[/b]      / question Enter: answered in character from the memories of
         the step; stored in the interviews table (the only write)
         q quits (in a pop-up: closes it) · ? this help
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 78; max-width: 100%; height: auto; max-height: 100%;
                                  border: round $accent; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
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
