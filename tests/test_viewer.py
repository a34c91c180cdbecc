"""The viewers on a small run recorded by the test: pixels of a rendered frame (SDL dummy
driver), the Textual replay's map cells after a seek, following a run still being written."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"

from tests.test_replay import record  # noqa: E402
from village.replay import Frame, ReplayReader  # noqa: E402

TILE = 24
STEPS = 200


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> ReplayReader:
    """A scripted run whose residents always choose to talk, so it has conversations."""
    from tests.helpers import build_model, by_purpose

    folder = tmp_path_factory.mktemp("viewer")
    model, _ = build_model(folder, responder=by_purpose(
        {"react": lambda r: {"reason": "to say hello", "decision": "talk"}}))
    for _ in range(STEPS):
        model.step()
    model.finish()
    model.recorder.close()
    r = ReplayReader(folder / "run.db")
    yield r
    r.close()


def _alone(frame: Frame) -> list:
    """Agents with a tile to themselves (sprites are smaller than a tile, so none covers them)."""
    return [a for a in frame.agents if all((a.x, a.y) != (b.x, b.y) for b in frame.agents if b.id != a.id)]


def _speaking_step(reader: ReplayReader) -> tuple[int, int]:
    """A step with exactly one current utterance, whose speaker has a tile to themselves."""
    for f in reader.frames(0, reader.last_step):
        if len(f.utterances) == 1:
            a = f.agent(f.utterances[0].speaker_id)
            if a in _alone(f):
                return f.step, a.id
    raise AssertionError("the fixture run has no utterance by an agent standing alone")


def _quiet_step(reader: ReplayReader) -> int:
    for f in reader.frames(0, reader.last_step):
        if not f.utterances and len(_alone(f)) >= 2:
            return f.step
    raise AssertionError("the fixture run has no frame without utterances")


def test_sprites_at_their_tiles(reader: ReplayReader) -> None:
    from village.viewer import style
    from village.viewer.snapshot import render_frame

    step = _quiet_step(reader)
    frame = reader.state(step)
    surf = render_frame(reader, step, tile=TILE)
    r = int(TILE * 0.42)
    for a in _alone(frame):
        cx, cy = a.x * TILE + TILE // 2, a.y * TILE + TILE // 2
        colour = style.agent_colour(a.id)
        # above and below the initials, inside the disc; and the disc ends within the tile
        assert tuple(surf.get_at((cx, cy + int(r * 0.75))))[:3] == colour, a.name
        assert tuple(surf.get_at((cx, cy - int(r * 0.8))))[:3] == colour, a.name
        assert tuple(surf.get_at((cx, cy + r + 2)))[:3] != colour, a.name
        # and nowhere else near: one tile further down is map, not this agent
        assert tuple(surf.get_at((cx, cy + TILE)))[:3] != colour
    # no utterance current: no bubble-white anywhere
    w, h = surf.get_size()
    white = sum(1 for x in range(0, w, 2) for y in range(0, h, 2) if tuple(surf.get_at((x, y)))[:3] == style.BUBBLE)
    assert white == 0


def test_speech_bubble_above_the_speaker(reader: ReplayReader) -> None:
    from village.viewer import style
    from village.viewer.snapshot import render_frame

    step, speaker = _speaking_step(reader)
    a = reader.state(step).agent(speaker)
    surf = render_frame(reader, step, tile=TILE)
    cx, cy = a.x * TILE + TILE // 2, a.y * TILE + TILE // 2
    r = int(TILE * 0.42)
    w, h = surf.get_size()
    whites = [(x, y) for x in range(w) for y in range(h)
              if tuple(surf.get_at((x, y)))[:3] == style.BUBBLE]
    assert len(whites) > 150, "no speech bubble drawn"
    # the bubble sits above the speaker's sprite: its lowest white pixel just above the disc,
    # horizontally around the speaker (it may be shifted to stay on the map)
    near = [(x, y) for x, y in whites if abs(x - cx) < 160 and y < cy - r]
    assert len(near) > 0.9 * len(whites)
    assert cy - r - 12 <= max(y for _, y in near) < cy - r
    assert min(abs(x - cx) for x, _ in near) <= 2
    # the speaker's sprite is still drawn under it
    assert tuple(surf.get_at((cx, cy + int(r * 0.75))))[:3] == style.agent_colour(a.id)


def test_viewer_window_draws_and_seeks(reader: ReplayReader) -> None:
    import pygame

    from village.viewer.app import Viewer

    v = Viewer(reader, size=(900, 600), tile=20)
    v.open()
    try:
        v.draw(v.update(0.0))
        # click the timeline at 3/4: seek
        bar = v.bar_rect()
        tl = v.render.timeline_rect(bar)
        x = tl.x + int(tl.w * 0.75)
        v.handle(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(x, tl.centery), button=1))
        v.handle(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(x, tl.centery), button=1))
        assert abs(v.pb.step - int(0.75 * STEPS)) <= 2
        frame = v.update(0.0)
        v.draw(frame)
        # click an agent: the panel opens
        a = _alone(frame)[0]
        pos = v.view.tile_centre(a.x, a.y)
        v.handle(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))
        v.handle(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1))
        assert v.selected == a.id and v.view.rect.w < 900
        v.draw(v.update(0.0))
        # keys: step, speed, play
        before = v.pb.step
        v.key(pygame.K_RIGHT)
        assert v.pb.step == before + 1
        v.key(pygame.K_LEFT)
        v.key(pygame.K_LEFT)
        assert v.pb.step == before - 1
        v.key(pygame.K_UP)
        assert v.pb.speed == 2
        v.key(pygame.K_SPACE)
        v.update(1.0)
        assert v.pb.step == before - 1 + 4  # 2× at 2 steps/s for 1 s
        v.key(pygame.K_SPACE)
        v.key(pygame.K_h)
        v.draw(v.update(0.0))
        assert v.help
    finally:
        pygame.display.quit()


def test_terminal_replay_letters_after_seek(reader: ReplayReader) -> None:
    from village.viewer.terminal import ReplayApp

    step, _ = _speaking_step(reader)

    async def go() -> None:
        app = ReplayApp(reader)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause()
            app.seek(step - 1)
            await pilot.press("right")  # the same step key as the window
            await pilot.pause()
            assert app.pb.step == step
            m = app.map
            frame = reader.state(step)
            for a in frame.agents:
                line = m.render_line(a.y).text
                if sum((b.x, b.y) == (a.x, a.y) for b in frame.agents) == 1:
                    assert line[a.x * m.cell_w] == reader.agent(a.id).letter, (a.name, line)
            # an empty street tile shows no letter
            row = m.render_line(8).text
            agents_on_row = {a.x for a in frame.agents if a.y == 8}
            assert all(row[x * m.cell_w] == " " for x in range(1, 29) if x not in agents_on_row)
            await pilot.press("home")
            await pilot.pause()
            assert app.pb.step == 0
            first = reader.state(0)
            a = first.agents[0]
            assert m.render_line(a.y).text[a.x * m.cell_w] == reader.agent(a.id).letter

    asyncio.run(go())


def test_viewers_follow_a_growing_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pygame

    from village.viewer import app as app_mod
    from village.viewer import terminal
    from village.viewer.app import Viewer
    from village.viewer.terminal import ReplayApp

    monkeypatch.setattr(app_mod, "REFRESH_S", 0.0)
    monkeypatch.setattr(terminal, "REFRESH_S", 0.0)
    path = tmp_path / "live.db"
    model = record(path, 3, finish=False)
    try:
        r = ReplayReader(path)
        v = Viewer(r, size=(700, 500), follow=True)
        v.open()
        try:
            assert v.update(0.0).step == 3
            for _ in range(4):
                model.step()
            assert v.update(0.0).step == 7 and v.pb.last == 7
        finally:
            pygame.display.quit()

        async def go() -> None:
            app = ReplayApp(r, follow=True)
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.pause(0.2)
                assert app.pb.step == 7
                for _ in range(3):  # the model runs its own event loop: not in Textual's
                    await asyncio.to_thread(model.step)
                await pilot.pause(0.4)
                assert app.pb.step == 10 and app.frame.step == 10

        asyncio.run(go())
        r.close()
    finally:
        model.recorder.close()
        model.close()


def test_snapshot_command(tmp_path: Path, reader: ReplayReader) -> None:
    import pygame
    from click.testing import CliRunner

    from village.cli import main

    out = tmp_path / "shot.png"
    res = CliRunner().invoke(main, ["replay", str(reader.path), "--at", "07:20", "--snapshot", str(out),
                                    "--agent", "Mei Lin"])
    assert res.exit_code == 0, res.output
    img = pygame.image.load(str(out))
    assert img.get_height() == reader.world.height * TILE + 52
    assert img.get_width() > reader.world.width * TILE  # the side panel
