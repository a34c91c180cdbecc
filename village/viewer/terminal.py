"""The terminal replay (Textual): ``village replay RUN.db --terminal``.

The map as coloured characters (one tile = one cell, or two cells when the terminal is wide
enough, so the town keeps its shape), agents as letters on their colour, a timeline, a
legend of who is doing what, the selected agent's plan and memories, and a scrolling log of
actions and utterances. The keys are the pygame viewer's: Space, ←/→ (Shift: 10 min),
PgUp/PgDn, Home/End, ↑/↓ or ]/[, L, Tab, G (go to a step or time), ? (help), Q.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, RichLog, Static

from village.replay import Frame, ReplayError, ReplayReader
from village.viewer import style
from village.viewer.playback import Playback

REFRESH_S = 0.5
TICK_S = 1 / 20
LOG_BACKLOG = 60  # entries shown after a jump


class MapView(Widget):
    """The map; tile (x, y) is drawn at column ``x * cell_w``, row ``y`` of this widget."""

    DEFAULT_CSS = "MapView { width: auto; height: auto; }"

    def __init__(self, reader: ReplayReader, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.reader = reader
        self.world = reader.world
        self.cell_w = 1
        self.frame: Frame | None = None
        self.selected: int | None = None
        self._base: list[list[tuple[str, str]]] = []
        self._build_base()

    def _build_base(self) -> None:
        w = self.world
        colours = style.place_colours(w)
        cw = self.cell_w
        rows: list[list[tuple[str, str]]] = []
        for y in range(w.height):
            row = []
            for x in range(w.width):
                c = style.tile_colour(w, colours, x, y)
                bg = style.hex_colour(c)
                if not w.is_walkable(x, y):
                    row.append((" " * cw, f"on {bg}"))
                elif w.object_at(x, y):
                    row.append(("▪".ljust(cw), f"{style.hex_colour(style.shade(c, 0.6))} on {bg}"))
                else:
                    row.append((" " * cw, f"on {bg}"))
            rows.append(row)
        # labels: rooms, and areas without rooms, on a run of their tiles near the middle
        has_rooms = {p.parent for p in w.places.values() if p.kind == "room"}
        for name, p in w.places.items():
            if p.kind == "object" or (p.kind == "area" and name in has_rooms):
                continue
            label = p.short_name
            x0, y, run = style.label_spot(w, name, len(label) / cw)
            width_cells = run * cw
            label = label[:width_cells]
            if not label:
                continue
            start = x0 * cw + (width_cells - len(label)) // 2
            tiles = set(p.tiles)
            for i, ch in enumerate(label):
                col = start + i
                tx, sub = divmod(col, cw)
                if (tx, y) not in tiles:
                    continue
                text, st = rows[y][tx]
                text = text[:sub] + ch + text[sub + 1:]
                rows[y][tx] = (text, st.replace("on ", f"{style.hex_colour(style.LABEL)} on ", 1)
                               if " on " not in st else st)
        self._base = rows

    def set_cell_width(self, cw: int) -> None:
        if cw != self.cell_w:
            self.cell_w = cw
            self._build_base()
            self.refresh(layout=True)

    def get_content_width(self, container, viewport) -> int:  # noqa: ANN001
        return self.world.width * self.cell_w

    def get_content_height(self, container, viewport, width) -> int:  # noqa: ANN001
        return self.world.height

    def show(self, frame: Frame) -> None:
        self.frame = frame
        self.refresh()

    def cells(self) -> list[list[tuple[str, str]]]:
        """The map as (text, style) per tile, agents drawn."""
        rows = [list(r) for r in self._base]
        if self.frame is None:
            return rows
        cw = self.cell_w
        seen: dict[tuple[int, int], int] = {}
        for a in self.frame.agents:
            if not self.world.in_bounds(a.x, a.y):
                continue
            letter = self.reader.agent(a.id).letter
            col = style.agent_colour(a.id)
            fg = style.hex_colour(style.text_on(col))
            st = f"bold {fg} on {style.hex_colour(col)}"
            if a.id == self.selected:
                st += " reverse"
            n = seen.get((a.x, a.y), 0)
            seen[(a.x, a.y)] = n + 1
            if n == 0:
                extra = ('"' if a.utterance else ("z" if a.asleep else " ")) if cw > 1 else ""
                rows[a.y][a.x] = ((letter + extra)[:cw].ljust(cw), st)
            elif cw > 1:
                text, first_style = rows[a.y][a.x]
                rows[a.y][a.x] = (text[0] + "+", first_style)
        return rows

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for y, row in enumerate(self.cells()):
            if y:
                out.append("\n")
            run_text, run_style = "", None
            for text, st in row:
                if st == run_style:
                    run_text += text
                else:
                    if run_text:
                        out.append(run_text, run_style)
                    run_text, run_style = text, st
            if run_text:
                out.append(run_text, run_style)
        return out

    def on_click(self, event: events.Click) -> None:
        if self.frame is None:
            return
        x, y = event.x // self.cell_w, event.y
        for a in self.frame.agents:
            if (a.x, a.y) == (x, y):
                self.app.select(a.id)  # type: ignore[attr-defined]
                return


class Timeline(Static):
    """The run as a bar; click or drag to seek. Midnights are marked with ┃."""

    DEFAULT_CSS = "Timeline { height: 1; }"

    def __init__(self, pb: Playback, reader: ReplayReader, **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.pb = pb
        self.reader = reader
        self._dragging = False

    def render(self) -> Text:
        w = max(10, self.size.width)
        pb = self.pb
        span = max(1, pb.last - pb.first)
        cur = int((pb.step - pb.first) / span * (w - 1))
        chars = ["━" if i <= cur else "─" for i in range(w)]
        per_day = 86400 // self.reader.seconds_per_step
        t0 = self.reader.game_time(pb.first)
        s = pb.first + (86400 - (t0.hour * 3600 + t0.minute * 60 + t0.second)) // self.reader.seconds_per_step
        while s <= pb.last:
            chars[int((s - pb.first) / span * (w - 1))] = "┃"
            s += per_day
        chars[cur] = "●"
        out = Text()
        out.append("".join(chars[:cur]), "bold #f0aa3c")
        out.append(chars[cur], "bold #ffffff")
        out.append("".join(chars[cur + 1:]), "#6a6c7a")
        return out

    def _seek_to(self, x: int) -> None:
        w = max(10, self.size.width)
        f = min(max(x / (w - 1), 0.0), 1.0)
        self.app.seek(int(round(self.pb.first + f * (self.pb.last - self.pb.first))))  # type: ignore[attr-defined]

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._dragging = True
        self.capture_mouse()
        self._seek_to(event.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging:
            self._seek_to(event.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self._dragging = False
        self.release_mouse()


class GoTo(ModalScreen[str | None]):
    """Ask for a step or a time."""

    DEFAULT_CSS = """
    GoTo { align: center middle; }
    GoTo > Vertical { width: 60; height: auto; border: round $accent; background: $panel; padding: 1 2; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Go to a step (120, -1) or a time (17:00, day2 17:00, 2023-02-14T17:00):")
            yield Input(placeholder="day2 17:00", id="goto")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


HELP_TEXT = """[b]Keys[/b]
  Space            play / pause
  ← / →            step back / forward   (Shift: 10 minutes)
  PgUp / PgDn      one hour back / forward
  Home / End       first / last step (End follows a live run)
  ↑ / ↓, ] / [     faster / slower (1× … 64×)
  L                follow the newest step of a run in progress
  G                go to a step or a time
  Tab / Shift+Tab  select the next / previous agent (or click its letter)
  click timeline   seek
  ? / H            this help          Q  quit

[b]Map[/b]  agents are letters on their colour; " after a letter: speaking, z: asleep.
Press Esc to close."""


class Help(ModalScreen[None]):
    DEFAULT_CSS = """
    Help { align: center middle; }
    Help > Static { width: 78; height: auto; border: round $accent; background: $panel; padding: 1 2; }
    """
    BINDINGS = [Binding("escape,question_mark,h,q", "dismiss(None)", "close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP_TEXT)


class ReplayApp(App):
    """Replay a run in the terminal. ``seek(step)`` jumps; keys as in the pygame viewer."""

    TITLE = "Village replay"
    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; background: $boost; padding: 0 1; }
    #timeline { height: 1; padding: 0 1; }
    #main { height: 1fr; }
    #mapbox { width: 1fr; height: 1fr; overflow: auto auto; background: #1c1c22; }
    #side { width: 44; height: 1fr; padding: 0 1; overflow-y: auto; border-left: vkey $panel-lighten-2; }
    #log { height: 10; border-top: hkey $panel-lighten-2; }
    """
    BINDINGS = [
        Binding("space", "toggle", "play/pause", priority=True),
        Binding("left,comma", "step(-1)", "◀", priority=True),
        Binding("right,full_stop", "step(1)", "▶", priority=True),
        Binding("shift+left", "step_minutes(-10)", "-10 min", show=False, priority=True),
        Binding("shift+right", "step_minutes(10)", "+10 min", show=False, priority=True),
        Binding("pageup", "step_minutes(-60)", "-1 h", show=False, priority=True),
        Binding("pagedown", "step_minutes(60)", "+1 h", show=False, priority=True),
        Binding("home", "first", "start", show=False, priority=True),
        Binding("end", "last", "end", show=False, priority=True),
        Binding("up,right_square_bracket", "faster", "faster", priority=True),
        Binding("down,left_square_bracket", "slower", "slower", priority=True),
        Binding("l", "live", "live"),
        Binding("g", "goto", "go to"),
        Binding("tab", "next_agent(1)", "agent", priority=True),
        Binding("shift+tab", "next_agent(-1)", "agent", show=False, priority=True),
        Binding("escape", "unselect", "unselect", show=False),
        Binding("question_mark,h", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, reader: ReplayReader, *, start: int | None = None, follow: bool = False,
                 speed: int = 1, agent: int | None = None, play: bool = False):
        super().__init__()
        self.reader = reader
        first, last = reader.first_step, max(reader.last_step, reader.first_step)
        self.pb = Playback(first, last, pos=first if start is None else start, speed=speed)
        if follow:
            self.pb.go_live()
        self.pb.playing = play and not follow
        self.follow = follow or reader.running
        self.selected = agent
        self.frame: Frame | None = None
        self._shown = -1
        self._t = time.monotonic()
        self._last_refresh = 0.0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Timeline(self.pb, self.reader, id="timeline")
        with Horizontal(id="main"):
            with ScrollableContainer(id="mapbox"):
                yield MapView(self.reader, id="map")
            yield Static(id="side")
        yield RichLog(id="log", markup=False, wrap=True, max_lines=2000)
        yield Footer()

    @property
    def map(self) -> MapView:
        return self.query_one(MapView)

    def on_mount(self) -> None:
        for w in (self.query_one("#mapbox"), self.query_one("#log"), self.query_one("#side")):
            w.can_focus = False
        self.map.selected = self.selected
        self._fit_cells()
        self.show(force=True)
        self.set_interval(TICK_S, self.tick)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_cells()

    def _fit_cells(self) -> None:
        avail = self.size.width - 44 - 2
        self.map.set_cell_width(2 if self.reader.world.width * 2 <= avail else 1)

    # ------------------------------------------------------------------ the clock
    def tick(self) -> None:
        if self._shutting_down():  # the interval can still fire while the app shuts down
            return
        try:
            self._tick()
        except NoMatches:  # widgets removed mid-tick: only shutting down may do that
            if not self._shutting_down():
                raise

    def _shutting_down(self) -> bool:
        # exit() sets _exit; a shutdown without it (App.run_test leaving its block) clears
        # _running before it removes the widgets, so a tick in between finds no #status
        return self._exit or not self.is_running

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._t = now - self._t, now
        rd, pb = self.reader, self.pb
        if self.follow and now - self._last_refresh >= REFRESH_S:
            self._last_refresh = now
            try:
                rd.refresh()
            except ReplayError as exc:
                self.notify(str(exc), severity="error")
            if rd.last_step != pb.last:
                pb.extend(rd.last_step)
                self.query_one(Timeline).refresh()
            self.follow = rd.running or pb.live
        pb.tick(dt, growing=rd.running)
        if pb.step != self._shown:
            self.show()
        elif now - self._last_refresh < TICK_S * 1.5:
            self._status()

    def seek(self, step: int) -> None:
        """Jump to a step (clamped to the recorded run)."""
        self.pb.seek(step)
        self.show()

    def select(self, agent_id: int | None) -> None:
        self.selected = agent_id
        self.map.selected = agent_id
        self.show(force=True)

    # ------------------------------------------------------------------ drawing
    def show(self, force: bool = False) -> None:
        rd, pb = self.reader, self.pb
        if rd.last_step < rd.first_step:
            self.query_one("#status", Static).update("waiting for the first step…")
            return
        step = pb.step
        if step == self._shown and not force:
            return
        prev = self._shown
        frame = rd.state(step)
        self.frame = frame
        self.map.show(frame)
        self._log(prev, step)
        self._shown = step
        self._status()
        self.query_one(Timeline).refresh()
        self._side(frame)

    def _status(self) -> None:
        rd, pb = self.reader, self.pb
        if self.frame is None:
            return
        t = Text()
        t.append(f" {pb.label()} ", "bold #ffc85a" if pb.live else "bold")
        t.append(f" {self.frame.clock} ", "bold")
        t.append(f" step {self.frame.step}/{pb.last} ", "#a0a0b0")
        t.append(f" {rd.run.get('scenario') or ''} ", "#a0a0b0")
        if rd.running:
            t.append(" run in progress ", "#78dc8c")
        self.query_one("#status", Static).update(t)

    def _side(self, frame: Frame) -> None:
        rd = self.reader
        t = Text()
        for a in frame.agents:
            ag = rd.agent(a.id)
            col = style.agent_colour(a.id)
            t.append(f" {ag.letter} ", f"bold {style.hex_colour(style.text_on(col))} on {style.hex_colour(col)}"
                     + (" reverse" if a.id == self.selected else ""))
            t.append(f" {ag.name}", "bold")
            icon = style.action_icon(a.action, a.asleep, a.conversation_id is not None, ascii_only=True)
            t.append(f"  [{icon}] {a.action or 'idle'}\n", "")
            t.append(f"     {a.place or 'the street'}\n", "#9090a0")
            if a.utterance:
                t.append(f"     “{a.utterance}”\n", "italic #e0e0a0")
        if self.selected is not None:
            sel = frame.agent(self.selected)
            t.append("\n")
            t.append(f"{rd.agent(sel.id).name}\n", f"bold {style.hex_colour(style.agent_colour(sel.id))}")
            plans = rd.plans(sel.id, frame.step)
            t.append("Today's plan\n", "bold #d08030")
            now = frame.time.isoformat(timespec="seconds")
            for p in plans.day:
                on = p["start"] <= now < p["end"]
                t.append(f" {p['start'][11:16]}-{p['end'][11:16]} {p['description']} @ {p['place']}\n",
                         "bold" if on else "#9090a0")
            if plans.action:
                t.append(f" now: {plans.action['description']} @ {plans.action['place']}\n")
            t.append("Latest memories\n", "bold #d08030")
            for m in rd.memories(sel.id, frame.step, limit=6):
                imp = "?" if m["importance"] is None else m["importance"]
                t.append(f" [{m['kind']} {imp}] ", "#9090a0")
                t.append(" ".join(m["description"].split())[:160] + "\n")
        self.query_one("#side", Static).update(t)

    def _entries(self, lo: int, hi: int) -> list[tuple[int, int, Text]]:
        rd = self.reader
        out: list[tuple[int, int, Text]] = []
        for e in rd.events(lo, hi):
            t = Text()
            t.append(f"{rd.game_time(e['step']):%H:%M:%S} ", "#808090")
            if e["agent_id"] is not None:
                t.append(f"{rd.agent(e['agent_id']).letter} ",
                         f"bold {style.hex_colour(style.agent_colour(e['agent_id']))}")
            t.append(e["description"])
            if e.get("place"):
                t.append(f"  @ {e['place']}", "#808090")
            out.append((e["step"], 0, t))
        for u in rd.utterances(lo, hi):
            t = Text()
            t.append(f"{rd.game_time(u.step):%H:%M:%S} ", "#808090")
            t.append(f"{u.speaker}: ", f"bold {style.hex_colour(style.agent_colour(u.speaker_id))}")
            t.append(f"“{u.text}”", "italic")
            out.append((u.step, 1, t))
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def _log(self, prev: int, step: int) -> None:
        log = self.query_one(RichLog)
        if 0 <= prev < step <= prev + 600:
            for _, _, t in self._entries(prev + 1, step):
                log.write(t)
            return
        log.clear()
        lo = max(self.reader.first_step, step - 360 * 4)
        for _, _, t in self._entries(lo, step)[-LOG_BACKLOG:]:
            log.write(t)

    # ------------------------------------------------------------------ actions
    def _per_min(self) -> int:
        return max(1, 60 // self.reader.seconds_per_step)

    def action_toggle(self) -> None:
        self.pb.toggle()
        self._status()

    def action_step(self, n: int) -> None:
        self.seek(self.pb.step + n)

    def action_step_minutes(self, minutes: int) -> None:
        self.seek(self.pb.step + minutes * self._per_min())

    def action_first(self) -> None:
        self.seek(self.pb.first)

    def action_last(self) -> None:
        if self.reader.running:
            self.action_live()
        else:
            self.seek(self.pb.last)

    def action_faster(self) -> None:
        self.pb.faster()
        self._status()

    def action_slower(self) -> None:
        self.pb.slower()
        self._status()

    def action_live(self) -> None:
        self.pb.go_live()
        self.follow = True
        self.show()
        self._status()

    def action_next_agent(self, d: int) -> None:
        ids = [a.id for a in self.reader.agents]
        if not ids:
            return
        i = ids.index(self.selected) if self.selected in ids else (-1 if d > 0 else 0)
        self.select(ids[(i + d) % len(ids)])

    def action_unselect(self) -> None:
        self.select(None)

    def action_help(self) -> None:
        self.push_screen(Help())

    def action_goto(self) -> None:
        def done(value: str | None) -> None:
            if not value:
                return
            try:
                self.seek(self.reader.resolve(value.strip(), clamp=True))
            except ReplayError as exc:
                self.notify(str(exc).split(": ", 1)[-1], severity="error")

        self.push_screen(GoTo(), done)
