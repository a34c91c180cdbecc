"""Change-only checkpoints: an agent is skipped when its fingerprint is unchanged, so the
fingerprint must change whenever `checkpoint_state()` does (village/model.py)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.helpers import build_model
from village import model as vm
from village.bench import engine as eng


def test_fingerprint_covers_every_key_of_the_agent_state(tmp_path: Path) -> None:
    model, _ = build_model(tmp_path)
    for a in model.residents:
        assert vm._fingerprint_covers(a.checkpoint_state())
    assert not vm._fingerprint_covers({"plan": {}, "mind": {"something_new": 1}})
    assert not vm._fingerprint_covers({"plan": {}, "mind": {}, "extra": {}})


def test_an_unchanged_fingerprint_means_an_unchanged_state(tmp_path: Path) -> None:
    """Step a town through wake-up, plans, reactions and conversations; whenever an agent's
    fingerprint is the same as at the previous step, so is its checkpoint state."""
    model, _ = eng.build(eng.town(24), latency_s=0, concurrency=8, db=tmp_path / "run.db")
    keep = timedelta(minutes=model.config.react_cooldown_minutes)
    prev: dict[int, tuple] = {}
    skipped = changed = 0
    for _ in range(90):
        model.step()
        for a in model.residents:
            fp = vm._agent_fingerprint(a, model.now, keep)
            state = a.checkpoint_state()
            if a.agent_id in prev:
                old_fp, old_state = prev[a.agent_id]
                if old_fp == fp:
                    assert old_state == state, (model.steps, a.name)
                    skipped += 1
                else:
                    changed += 1
            prev[a.agent_id] = (fp, state)
    model.runner.close()
    model.recorder.close()
    model.close()
    assert skipped > changed > 0  # most agent-steps change nothing; some do


def test_gather_runs_coroutines_that_wait_and_that_do_not(tmp_path: Path) -> None:
    import asyncio

    model, _ = build_model(tmp_path, record=False)

    async def instant(i: int) -> int:
        return i

    async def waits(i: int) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        return -i

    out = model._gather((instant(i) if i % 2 else waits(i)) for i in range(10))
    assert out == [(i if i % 2 else -i) for i in range(10)]
    model.close()
