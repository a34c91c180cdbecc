"""The pygame replay window: ``village replay RUN.db``.

Map with places, walls and agents; speech bubbles; the clock and a timeline to click or
drag; play/pause, 1×–64×, stepping; click an agent for its side panel; resizable, with
pan and zoom. Press H in the window for the shortcuts. A run still being written is
followed: new steps extend the timeline, and End (or L, or ``--follow``) pins the view to
the newest step.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from village.replay import Frame, ReplayReader  # noqa: E402
from village.viewer.playback import Playback  # noqa: E402
from village.viewer.render import BAR_H, PANEL_W, Renderer, View  # noqa: E402

REFRESH_S = 0.5  # how often a run in progress is re-read
PAN_PX = 40


class Viewer:
    """The interactive window. ``run()`` opens it; ``update(dt)`` + ``draw()`` make one frame."""

    def __init__(self, reader: ReplayReader, *, start: int | None = None, follow: bool = False,
                 speed: int = 1, size: tuple[int, int] | None = None, tile: int | None = None,
                 agent: int | str | None = None, play: bool = False):
        self.reader = reader
        first, last = reader.first_step, max(reader.last_step, reader.first_step)
        self.pb = Playback(first, last, pos=first if start is None else start, speed=speed)
        if follow:
            self.pb.go_live()
        self.pb.playing = play and not follow
        self.follow = follow or reader.running
        self.selected = reader.agent(agent).id if agent is not None else None
        self.help = False
        self.note = ""
        self._note_until = 0.0
        self._size = size
        self._tile_req = tile
        self.screen: pygame.Surface | None = None
        self.render: Renderer | None = None
        self.view: View | None = None
        self.rects: dict[int, pygame.Rect] = {}
        self._drag: str | None = None
        self._drag_from = (0, 0)
        self._drag_origin = (0.0, 0.0)
        self._dragged = False
        self._last_refresh = 0.0
        self.running = True

    # ------------------------------------------------------------------ layout
    def open(self) -> None:
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(f"Village replay — {self.reader.path.name}")
        self.render = Renderer(self.reader)
        w = self.reader.world
        if self._size is None:
            info = pygame.display.Info()
            max_w = int((info.current_w or 1400) * 0.9)
            max_h = int((info.current_h or 900) * 0.85)
            tile = self._tile_req or max(8, min(32, (max_w - PANEL_W) // w.width,
                                             (max_h - BAR_H) // w.height))
            self._size = (max(760, min(max_w, w.width * tile + PANEL_W)),
                          max(480, min(max_h, w.height * tile + BAR_H)))
        self.screen = pygame.display.set_mode(self._size, pygame.RESIZABLE)
        self.view = View(self.map_rect(), 24, 0.0, 0.0)
        if self._tile_req:
            self.view.tile = min(self._tile_req, self.render.max_tile())
            self.centre()
        else:
            self.fit()

    def map_rect(self) -> pygame.Rect:
        assert self.screen is not None
        w, h = self.screen.get_size()
        pw = PANEL_W if self.selected is not None and w >= PANEL_W + 200 else 0
        return pygame.Rect(0, 0, w - pw, max(10, h - BAR_H))

    def bar_rect(self) -> pygame.Rect:
        assert self.screen is not None
        w, h = self.screen.get_size()
        return pygame.Rect(0, h - BAR_H, w, BAR_H)

    def fit(self) -> None:
        assert self.view is not None and self.render is not None
        w = self.reader.world
        r = self.view.rect = self.map_rect()
        self.view.tile = max(4, min(self.render.max_tile(), r.w // w.width, r.h // w.height))
        self.centre()

    def centre(self) -> None:
        assert self.view is not None
        w, v = self.reader.world, self.view
        v.ox = (v.rect.w - w.width * v.tile) / 2
        v.oy = (v.rect.h - w.height * v.tile) / 2

    def zoom(self, factor: float, at: tuple[int, int] | None = None) -> None:
        assert self.view is not None and self.render is not None
        v = self.view
        new = max(4, min(self.render.max_tile(), int(round(v.tile * factor))))
        if new == v.tile:
            new = max(4, min(self.render.max_tile(), v.tile + (1 if factor > 1 else -1)))
        px, py = at if at is not None else v.rect.center
        # keep the map point under (px, py) fixed
        mx = (px - v.rect.x - v.ox) / v.tile
        my = (py - v.rect.y - v.oy) / v.tile
        v.tile = new
        v.ox = px - v.rect.x - mx * new
        v.oy = py - v.rect.y - my * new
        self.clamp_pan()

    def clamp_pan(self) -> None:
        assert self.view is not None
        v, w = self.view, self.reader.world
        mw, mh = w.width * v.tile, w.height * v.tile
        for attr, size, room in (("ox", mw, v.rect.w), ("oy", mh, v.rect.h)):
            if size <= room:
                setattr(v, attr, (room - size) / 2)
            else:
                setattr(v, attr, min(0.0, max(room - size, getattr(v, attr))))

    def say(self, note: str, seconds: float = 2.5) -> None:
        self.note, self._note_until = note, time.monotonic() + seconds

    # ------------------------------------------------------------------ input
    def handle(self, ev: pygame.event.Event) -> None:
        pb = self.pb
        if ev.type == pygame.QUIT:
            self.running = False
        elif ev.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED):
            self.relayout()
        elif ev.type == pygame.KEYDOWN:
            self.key(ev.key, ev.mod, getattr(ev, "unicode", ""))
        elif ev.type == pygame.MOUSEWHEEL:
            self.zoom(1.25 if ev.y > 0 else 0.8, pygame.mouse.get_pos())
        elif ev.type == pygame.MOUSEBUTTONDOWN and ev.button in (1, 2, 3):
            if self.bar_rect().collidepoint(ev.pos) and ev.button == 1:
                self._drag = "timeline"
                pb.seek(self.render.step_at_x(self.bar_rect(), ev.pos[0], pb.first, pb.last))
            elif self.view is not None and self.view.rect.collidepoint(ev.pos):
                self._drag, self._drag_from, self._dragged = "pan", ev.pos, False
                self._drag_origin = (self.view.ox, self.view.oy)
        elif ev.type == pygame.MOUSEMOTION and self._drag:
            if self._drag == "timeline":
                pb.seek(self.render.step_at_x(self.bar_rect(), ev.pos[0], pb.first, pb.last))
            elif self._drag == "pan" and self.view is not None:
                dx, dy = ev.pos[0] - self._drag_from[0], ev.pos[1] - self._drag_from[1]
                if abs(dx) + abs(dy) > 3:
                    self._dragged = True
                if self._dragged:
                    self.view.ox, self.view.oy = self._drag_origin[0] + dx, self._drag_origin[1] + dy
                    self.clamp_pan()
        elif ev.type == pygame.MOUSEBUTTONUP and ev.button in (1, 2, 3):
            if self._drag == "pan" and not self._dragged and ev.button == 1:
                self.click(ev.pos)
            self._drag = None

    def click(self, pos: tuple[int, int]) -> None:
        hit = [aid for aid, r in self.rects.items() if r.inflate(4, 4).collidepoint(pos)]
        if hit:
            # the sprite drawn last (on top) wins
            self.select(hit[-1])
        elif self.selected is not None:
            self.select(None)

    def select(self, agent_id: int | None) -> None:
        self.selected = agent_id
        self.relayout()

    def relayout(self) -> None:
        if self.view is None:
            return
        self.view.rect = self.map_rect()
        self.clamp_pan()

    def key(self, key: int, mod: int = 0, uni: str = "") -> None:
        pb = self.pb
        shift = bool(mod & pygame.KMOD_SHIFT)
        per_min = max(1, 60 // self.reader.seconds_per_step)
        if key in (pygame.K_q,) or (key == pygame.K_w and mod & pygame.KMOD_CTRL):
            self.running = False
        elif key == pygame.K_SPACE:
            pb.toggle()
        elif key in (pygame.K_RIGHT, pygame.K_PERIOD):
            pb.step_by(10 * per_min if shift else 1)
        elif key in (pygame.K_LEFT, pygame.K_COMMA):
            pb.step_by(-(10 * per_min if shift else 1))
        elif key == pygame.K_PAGEDOWN:
            pb.step_by(60 * per_min)
        elif key == pygame.K_PAGEUP:
            pb.step_by(-60 * per_min)
        elif key == pygame.K_HOME:
            pb.seek(pb.first)
        elif key == pygame.K_END:
            if self.reader.running:
                pb.go_live()
            else:
                pb.seek(pb.last)
        elif key in (pygame.K_UP, pygame.K_RIGHTBRACKET):
            self.say(f"speed {pb.faster()}×", 1.0)
        elif key in (pygame.K_DOWN, pygame.K_LEFTBRACKET):
            self.say(f"speed {pb.slower()}×", 1.0)
        elif key == pygame.K_l:
            pb.go_live()
            self.say("following the newest step" if self.reader.running else "at the last step (run finished)")
        elif key in (pygame.K_h, pygame.K_F1) or uni == "?":
            self.help = not self.help
        elif key == pygame.K_ESCAPE:
            if self.help:
                self.help = False
            elif self.selected is not None:
                self.select(None)
        elif key == pygame.K_TAB:
            ids = [a.id for a in self.reader.agents]
            if ids:
                i = ids.index(self.selected) if self.selected in ids else -1
                self.select(ids[(i + (-1 if shift else 1)) % len(ids)])
        elif key in (pygame.K_EQUALS, pygame.K_PLUS, pygame.K_KP_PLUS) or uni == "+":
            self.zoom(1.25)
        elif key in (pygame.K_MINUS, pygame.K_KP_MINUS):
            self.zoom(0.8)
        elif key in (pygame.K_f, pygame.K_0):
            self.fit()
        elif key in (pygame.K_w, pygame.K_a, pygame.K_s, pygame.K_d) and self.view is not None:
            dx = {pygame.K_a: PAN_PX, pygame.K_d: -PAN_PX}.get(key, 0)
            dy = {pygame.K_w: PAN_PX, pygame.K_s: -PAN_PX}.get(key, 0)
            self.view.ox += dx
            self.view.oy += dy
            self.clamp_pan()
        elif key == pygame.K_p:
            self.save_png()

    def save_png(self) -> Path | None:
        if self.screen is None:
            return None
        out = Path(f"{self.reader.path.stem}-step{self.pb.step}.png")
        pygame.image.save(self.screen, str(out))
        self.say(f"saved {out}")
        return out

    # ------------------------------------------------------------------ one frame
    def update(self, dt: float) -> Frame:
        now = time.monotonic()
        rd, pb = self.reader, self.pb
        if self.follow and now - self._last_refresh >= REFRESH_S:
            self._last_refresh = now
            was = rd.last_step
            rd.refresh()
            if rd.last_step != was or pb.last != rd.last_step:
                pb.extend(rd.last_step)
            self.follow = rd.running or pb.live
        pb.tick(dt, growing=rd.running)
        if self.note and now > self._note_until:
            self.note = ""
        if rd.last_step < rd.first_step:  # a run that has not committed its first step yet
            return Frame(rd.first_step, rd.game_time(rd.first_step), "waiting for the first step", ())
        return rd.state(pb.step)

    def draw(self, frame: Frame) -> None:
        assert self.screen is not None and self.render is not None and self.view is not None
        pb = self.pb
        nxt = None
        t = pb.frac
        if t > 0 and frame.agents and pb.step < self.reader.last_step:
            nxt = self.reader.state(pb.step + 1)
        self.rects = self.render.draw_world(self.screen, self.view, frame, next_frame=nxt, t=t,
                                            selected=self.selected)
        self.render.draw_bar(self.screen, self.bar_rect(), frame, pb, self.note)
        if self.selected is not None and frame.agents and self.view.rect.w < self.screen.get_width():
            r = pygame.Rect(self.view.rect.right, 0, self.screen.get_width() - self.view.rect.right,
                            self.view.rect.h)
            self.render.draw_panel(self.screen, r, self.selected, frame)
        if self.help:
            self.render.draw_help(self.screen, self.view.rect)

    def run(self, max_frames: int | None = None, fps: int = 60) -> int:
        """The event loop; returns the number of frames drawn."""
        if self.screen is None:
            self.open()
        clock = pygame.time.Clock()
        n = 0
        try:
            while self.running:
                dt = clock.tick(fps) / 1000.0 if fps else clock.tick() / 1000.0
                for ev in pygame.event.get():
                    self.handle(ev)
                frame = self.update(dt)
                self.draw(frame)
                pygame.display.flip()
                n += 1
                if max_frames is not None and n >= max_frames:
                    break
        finally:
            pygame.display.quit()
        return n


def run_viewer(reader: ReplayReader, **kwargs) -> None:  # noqa: ANN003
    Viewer(reader, **kwargs).run()
