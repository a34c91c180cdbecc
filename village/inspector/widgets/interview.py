"""Interview the selected agent: it answers in character from its memories as of the step.

The question and answer are appended to the run's ``interviews`` table — the only write the
inspector ever makes; what the run recorded is not changed."""
from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from village.inspector.widgets.base import AgentView, BoxKeys, box_bindings
from village.replay import Agent


class InterviewView(BoxKeys, AgentView, Vertical):
    """Earlier interviews of the agent, and a question box (Enter asks)."""

    DEFAULT_CSS = """
    InterviewView > #ask-status { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    InterviewView > #ask-log { height: 1fr; padding: 0 1; }
    InterviewView > #ask-input { dock: bottom; }
    """

    BINDINGS = box_bindings("Ask")
    BOX, LEAVE_TO = "#ask-input", "#ask-log"
    NOTE = "#ask-status"
    NO_AGENT = "Select an agent first (\\[ or ], or the town view)."

    def __init__(self, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.busy = False
        self.last_answer: str | None = None
        self.last_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="ask-status")
        with VerticalScroll(id="ask-log"):
            yield Static(id="ask-text")
        yield Input(placeholder="/ then ask the selected agent a question, Enter", id="ask-input",
                    compact=True)

    def show(self, a: Agent) -> None:
        app = self.inspector
        r = app.reader
        self.query_one("#ask-status", Static).update(
            f"Ask [b]{escape(a.name)}[/b] as of step {app.step} ({r.clock(app.step)}); model "
            f"{escape(app.interview_spec)}. Stored in the run's interviews table only."
            + ("  [yellow]asking…[/yellow]" if self.busy else ""))
        lines = []
        for iv in r.interviews(a.id):
            lines.append(f"[dim]step {iv['at_step']} · {escape(iv['model'] or '?')}[/dim]\n"
                         f"[b]Q:[/b] {escape(iv['question'] or '')}\n[b]{escape(a.name)}:[/b] "
                         f"{escape(iv['answer'] or '')}\n")
        if self.last_error:
            lines.append(f"[red]{escape(self.last_error)}[/red]")
        self.query_one("#ask-text", Static).update("\n".join(lines) or "No interviews yet.")
        self.query_one("#ask-log", VerticalScroll).scroll_end(animate=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        app = self.inspector
        question = event.value.strip()
        if not question or app.agent is None or self.busy:
            return
        event.input.value = ""
        self.busy, self.last_error = True, None
        self.reload()
        self._ask(app.agent.name, question, app.step)

    @work(thread=True, exclusive=True, group="interview")
    def _ask(self, agent: str, question: str, step: int) -> None:
        try:
            ans = self.inspector.ask(agent, question, step)
        except Exception as exc:  # noqa: BLE001 - shown in the log, never fatal
            self.app.call_from_thread(self._done, None, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._done, ans.answer, None)

    def _done(self, answer: str | None, error: str | None) -> None:
        self.busy, self.last_answer, self.last_error = False, answer, error
        self.reload()
