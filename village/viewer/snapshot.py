"""Render one frame of a run to a PNG, headless (SDL's dummy video driver).

``village replay RUN.db --at 17:00 --snapshot out.png`` calls :func:`snapshot`. The image is
the map at ``tile`` pixels per tile with its origin at the top-left corner (tile ``(x, y)``
is centred on pixel ``(x * tile + tile // 2, y * tile + tile // 2)``), the timeline bar
under it and, with ``agent``, that agent's side panel on the right.
"""
from __future__ import annotations

import os
from pathlib import Path

from village.replay import ReplayError, ReplayReader


def _init_headless() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def render_frame(reader: ReplayReader, step: int, *, tile: int = 24, agent: int | str | None = None):
    """The frame at ``step`` as a pygame Surface (see the module docstring for the layout)."""
    _init_headless()
    import pygame

    from village.viewer.playback import Playback
    from village.viewer.render import BAR_H, PANEL_W, Renderer, View

    if not pygame.font.get_init():
        pygame.font.init()
    frame = reader.state(step)
    rend = Renderer(reader)
    tile = max(4, min(int(tile), rend.max_tile()))
    w, h = reader.world.width * tile, reader.world.height * tile
    selected = reader.agent(agent).id if agent is not None else None
    panel_w = PANEL_W if selected is not None else 0
    surf = pygame.Surface((max(w + panel_w, 480), h + BAR_H))
    view = View(pygame.Rect(0, 0, surf.get_width() - panel_w, h), tile, 0, 0)
    rend.draw_world(surf, view, frame, selected=selected)
    pb = Playback(reader.first_step, reader.last_step, pos=step)
    rend.draw_bar(surf, pygame.Rect(0, h, surf.get_width(), BAR_H), frame, pb)
    if selected is not None:
        rend.draw_panel(surf, pygame.Rect(surf.get_width() - panel_w, 0, panel_w, h), selected, frame)
    return surf


def snapshot(reader: ReplayReader, step: int, out: str | Path, *, tile: int = 24,
             agent: int | str | None = None) -> Path:
    """Write the frame at ``step`` to ``out`` (PNG); returns the path."""
    _init_headless()
    import pygame

    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tga"):
        raise ReplayError(f"{out}: unsupported image type {out.suffix or '(none)'} (expected .png)")
    surf = render_frame(reader, step, tile=tile, agent=agent)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pygame.image.save(surf, str(out))
    except (pygame.error, OSError) as exc:
        raise ReplayError(f"{out}: cannot write the image ({exc})") from None
    return out
