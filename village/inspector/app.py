"""The inspector app: one selected step and one selected agent, shown by every view.

Views: 1 town (agents at the step, the social graph), 2 agent (identity, memories, plans,
conversations, reflections), 3 retrieval probe, 4 model calls, 5 interview. Pop-ups open a
memory record, a plan entry or a model call. See docs/inspector.md for the keys.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from village.inspector.fmt import short_time
from village.inspector.probe import Probe
from village.inspector.screens.call import CallScreen
from village.inspector.screens.memory import MemoryScreen
from village.inspector.screens.misc import GotoScreen, HelpScreen
from village.inspector.screens.plan import PlanScreen
from village.inspector.widgets.base import View
from village.inspector.widgets.calls import CallsView
from village.inspector.widgets.conversations import ConversationView
from village.inspector.widgets.identity import IdentityView
from village.inspector.widgets.interview import InterviewView
from village.inspector.widgets.memories import MemoryView
from village.inspector.widgets.overview import AgentsTable, SocialGraph
from village.inspector.widgets.plans import PlanView
from village.inspector.widgets.probe import ProbeView
from village.inspector.widgets.reflections import ReflectionView
from village.inspector.widgets.timeline import Timeline
from village.replay import Agent, ReplayError, ReplayReader

POLL_S = 0.5  # how often a run in progress is re-read
VIEWS = Binding.Group("Views", compact=True)
STEP = Binding.Group("Step", compact=True)
AGENT = Binding.Group("Agent", compact=True)


# (tab title, pane id, view, view id) of the panes that hold one view each
AGENT_TABS = (("i Identity", "identity", IdentityView, "identity-view"),
              ("m Memories", "memories", MemoryView, "memory-view"),
              ("p Plans", "plans", PlanView, "plan-view"),
              ("c Chats", "chats", ConversationView, "conversation-view"),
              ("r Reflections", "reflections", ReflectionView, "reflection-view"))
MAIN_TABS = (("3 Probe", "probe", ProbeView, "probe-view"),
             ("4 Calls", "calls", CallsView, "calls-view"),
             ("5 Interview", "interview", InterviewView, "interview-view"))


def _panes(tabs: tuple[tuple[str, str, type[Widget], str], ...]) -> ComposeResult:
    for title, pane_id, view, view_id in tabs:
        with TabPane(title, id=pane_id):
            yield view(id=view_id)


class Tabs(TabbedContent):
    """Tabs that switch only when asked (a key, a click): Textual's TabbedContent also switches
    to a pane when a widget in it gets focus, and a focus message still in flight would switch
    back right after a key switched away."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()


class InspectorApp(App[None]):
    """``InspectorApp(reader, start=None, follow=False, agent=None, llm_spec=None)``.

    ``start`` is the first step shown (default: the last), ``agent`` an agent id to select
    (default: the first), ``llm_spec`` the model for interviews (default: the run's).
    """

    TITLE = "Village inspector"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #views { height: 1fr; }
    #views > ContentSwitcher { height: 1fr; }
    TabPane { padding: 0; height: 1fr; }
    """
    BINDINGS = [
        Binding("1", "view('town')", "Town", group=VIEWS),
        Binding("2", "view('agent')", "Agent", group=VIEWS),
        Binding("3", "view('probe')", "Probe", group=VIEWS),
        Binding("4", "view('calls')", "Calls", group=VIEWS),
        Binding("5", "view('interview')", "Interview", group=VIEWS),
        Binding("i", "agent_tab('identity')", "Identity", show=False),
        Binding("m", "agent_tab('memories')", "Memories", show=False),
        Binding("p", "agent_tab('plans')", "Plans", show=False),
        Binding("c", "agent_tab('chats')", "Conversations", show=False),
        Binding("r", "agent_tab('reflections')", "Reflections", show=False),
        Binding("comma", "step(-1)", "Step", key_display=",", group=STEP),
        Binding("full_stop", "step(1)", "Step", key_display=".", group=STEP),
        Binding("less_than_sign", "minutes(-10)", "-10 min", show=False),
        Binding("greater_than_sign", "minutes(10)", "+10 min", show=False),
        Binding("g", "goto", "Go to"),
        Binding("left_square_bracket", "agent(-1)", "Agent", key_display="[", group=AGENT),
        Binding("right_square_bracket", "agent(1)", "Agent", key_display="]", group=AGENT),
        Binding("f", "toggle_follow", "Follow"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    step: reactive[int] = reactive(0, init=False)
    agent_id: reactive[int | None] = reactive(None, init=False)
    follow: reactive[bool] = reactive(False, init=False)

    def __init__(self, reader: ReplayReader, *, start: int | None = None, follow: bool = False,
                 agent: int | None = None, llm_spec: str | None = None, poll_s: float = POLL_S):
        super().__init__()
        self.reader = reader
        self.probe = Probe(reader)
        self.llm_spec = llm_spec
        self.error: str | None = None  # a ReplayError that ended the app (printed by the CLI)
        self._poll_s = poll_s
        self._rows: OrderedDict[tuple[int, int], list] = OrderedDict()
        self._rows_lock = threading.Lock()
        self._interview_llm: Any = None
        self._reload_pending = False
        last = reader.last_step
        self.set_reactive(InspectorApp.follow, follow)
        self.set_reactive(InspectorApp.step, max(reader.first_step,
                                                 last if start is None or follow else start))
        first_agent = reader.agents[0].id if reader.agents else None
        self.set_reactive(InspectorApp.agent_id, agent if agent is not None else first_agent)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        self.timeline = Timeline(id="timeline")
        yield self.timeline
        with Tabs(id="views", initial="agent"):
            with TabPane("1 Town", id="town"):
                yield AgentsTable(id="agents")
                yield SocialGraph(id="social")
            with TabPane("2 Agent", id="agent"):
                with Tabs(id="agent-tabs", initial="memories"):
                    yield from _panes(AGENT_TABS)
            yield from _panes(MAIN_TABS)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self._poll_s, self.poll)
        self.reload_views()
        self.call_after_refresh(self.focus_view)

    # ------------------------------------------------------------------ state
    @property
    def main(self) -> Screen:
        """The main screen (views are looked up there, whatever pop-up is open)."""
        return self.screen_stack[0]

    def close_popups(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    @property
    def agent(self) -> Agent | None:
        if self.agent_id is None:
            return None
        try:
            return self.reader.agent(self.agent_id)
        except ReplayError:
            return None

    @property
    def interview_spec(self) -> str:
        from village.interview import spec_for_recorded

        return self.llm_spec or spec_for_recorded(str(self.reader.run.get("llm") or "local"))

    def set_step(self, step: int) -> None:
        r = self.reader
        if r.last_step < r.first_step:
            return
        step = max(r.first_step, min(int(step), r.last_step))
        if self.follow and step != r.last_step:
            self.follow = False
        self.step = step

    def select_agent(self, agent_id: int, open_view: bool = False) -> None:
        if agent_id != self.agent_id:
            self.agent_id = agent_id
        if open_view:
            self.close_popups()
            self.set_focus(None)
            self.main.query_one("#views", TabbedContent).active = "agent"

    def watch_step(self) -> None:
        self.reload_views()

    def watch_agent_id(self) -> None:
        self.reload_views()

    def watch_follow(self, follow: bool) -> None:
        if follow and self.reader.last_step >= self.reader.first_step:
            self.step = self.reader.last_step
        self.timeline.refresh()

    def memory_rows(self, agent_id: int, step: int) -> list:
        """``ReplayReader.memory_rows`` for (agent, step), cached for the few last asked;
        importance None for a record not rated yet at that step."""
        key = (agent_id, step)
        with self._rows_lock:
            rows = self._rows.get(key)
            if rows is not None:
                self._rows.move_to_end(key)
                return list(rows)
        rows = self.reader.memory_rows(agent_id, step, unrated=None)
        with self._rows_lock:
            self._rows[key] = rows
            while len(self._rows) > 6:
                self._rows.popitem(last=False)
        return list(rows)

    def short_time_of_step(self, step: int | None) -> str:
        return "-" if step is None else short_time(self.reader, self.reader.game_time(step))

    # ------------------------------------------------------------------ refreshing
    def reload_views(self) -> None:
        """Mark every view stale and reload the ones on screen after this refresh."""
        for v in self.main.query("*"):
            if isinstance(v, View):
                v.stale = True
        if not self._reload_pending:
            self._reload_pending = True
            self.call_after_refresh(self.reload_shown)

    def reload_shown(self) -> None:
        self._reload_pending = False
        if not self.is_running:
            return
        try:
            for v in list(self.main.query("*")):
                if isinstance(v, View) and v.stale and v.shown():
                    v.stale = False
                    v.reload()
        except ReplayError as exc:  # the file went bad under us: leave with one line
            self.error = str(exc)
            self.exit(return_code=2)

    FOCUS = {"town": "#agents", "identity": "#identity-view", "memories": "#mem-table",
             "plans": "#plan-table", "chats": "#conv-table", "reflections": "#refl-table",
             "probe": "#probe-table", "calls": "#calls-table", "interview": "#ask-log"}

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.call_after_refresh(self.reload_shown)
        self.call_after_refresh(self.focus_view)

    def focus_view(self) -> None:
        """Focus the main widget of the view on screen (so its keys show in the footer)."""
        pane = self.main.query_one("#views", TabbedContent).active
        if pane == "agent":
            pane = self.main.query_one("#agent-tabs", TabbedContent).active
        target = self.FOCUS.get(pane)
        if target and self.screen is self.main:
            self.main.query_one(target).focus()

    def poll(self) -> None:
        """Follow a run in progress: re-read its last step (and move there when following)."""
        r = self.reader
        if r.status not in ("running", None) and not self.follow:
            return
        before = r.last_step
        try:
            last = r.refresh()
        except ReplayError as exc:
            self.error = str(exc)
            self.exit(return_code=2)
            return
        if last != before:
            if self.follow or before < r.first_step:
                self.step = last
            if before < r.first_step:  # the first step of a run that had none: show it all
                if self.agent_id is None and r.agents:
                    self.agent_id = r.agents[0].id
                self.main.query_one(CallsView).set_agents()
                self.reload_views()
            self.timeline.refresh()
        elif self.follow:
            self.timeline.refresh()

    # ------------------------------------------------------------------ pop-ups
    def open_memory(self, memory_id: int) -> None:
        self.push_screen(MemoryScreen(memory_id))

    def open_call(self, call_id: int) -> None:
        self.push_screen(CallScreen(call_id))

    def open_plan(self, plan_id: int) -> None:
        self.push_screen(PlanScreen(plan_id))

    # ------------------------------------------------------------------ interview
    def ask(self, agent: str, question: str, step: int) -> Any:
        """Interview (from a worker thread): the model is built once and kept."""
        from agents.llm.factory import build_model
        from village.interview import interview

        if self._interview_llm is None:
            self._interview_llm = build_model(self.interview_spec, seed=int(self.reader.run.get("seed") or 0))
        return interview(self.reader.path, agent, question, at=step, llm=self._interview_llm,
                         k=10)

    # ------------------------------------------------------------------ actions
    def action_view(self, name: str) -> None:
        self.close_popups()
        self.set_focus(None)  # else focus left in the old pane's widgets may switch back to it
        self.main.query_one("#views", TabbedContent).active = name

    def action_agent_tab(self, name: str) -> None:
        self.close_popups()
        self.set_focus(None)
        self.main.query_one("#views", TabbedContent).active = "agent"
        self.main.query_one("#agent-tabs", TabbedContent).active = name

    def action_step(self, delta: int) -> None:
        self.set_step(self.step + delta)

    def action_minutes(self, minutes: int) -> None:
        self.set_step(self.step + minutes * 60 // self.reader.seconds_per_step)

    def action_goto(self) -> None:
        def done(step: int | None) -> None:
            if step is not None:
                self.set_step(step)

        self.push_screen(GotoScreen(), done)

    def action_agent(self, delta: int) -> None:
        ids = [a.id for a in self.reader.agents]
        if not ids:
            return
        cur = ids.index(self.agent_id) if self.agent_id in ids else -1
        self.select_agent(ids[(cur + delta) % len(ids)])

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
