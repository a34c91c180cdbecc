"""Reflect: when enough has happened, ask the salient questions about recent memories,
retrieve for each, and write insights that cite the records they come from."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent
    from memory.stream import Scored


def numbered(hits: list["Scored"]) -> str:
    """Statements numbered for citing as evidence."""
    return "\n".join(f"{i + 1}. {h.record.description}" for i, h in enumerate(hits))


def due(agent: "GenerativeAgent") -> bool:
    """The paper's trigger (summed importance of new observations reaches the threshold),
    at most once in `reflection_min_minutes`."""
    cfg = agent.model.config
    if agent.importance_since_reflection < cfg.reflection_threshold:
        return False
    last = agent.last_reflection
    return last is None or agent.model.now - last >= timedelta(minutes=cfg.reflection_min_minutes)


async def reflect(agent: "GenerativeAgent") -> None:
    m = agent.model
    cfg = m.config
    agent.importance_since_reflection = 0.0
    agent.last_reflection = m.now
    await agent.flush_pending()
    recent = agent.memory.recent(cfg.reflection_recent)
    res = await agent.ask("reflect_questions",
                          {"identity": agent.identity(), "name": agent.name},
                          lines=[r.description for r in recent], fallback={"questions": []})
    written = 0
    seen: set[str] = set()  # the bundled model often repeats itself: never pay twice
    for question in dict.fromkeys(q.strip() for q in res.value["questions"]):
        await agent.flush_pending()
        hits, _ = agent.retrieve(question, k=cfg.k_reflect, purpose="reflect")
        if not hits:
            continue
        variables, hits, dropped = agent.fit(
            "reflect_insights",
            {"identity": agent.identity(), "name": agent.name, "question": question},
            hits, numbered)
        if not hits:
            continue
        ins = await agent.ask(
            "reflect_insights", variables, dropped=dropped,
            enums={"statements": [str(i + 1) for i in range(len(hits))]},
            fallback={"insights": []},
        )
        for item in ins.value["insights"][: cfg.insights_per_question]:
            text = item["insight"].strip()
            if text in seen:
                continue
            seen.add(text)
            evidence = tuple(sorted({hits[int(i) - 1].record.id for i in item["because"]}))
            agent.remember(text, "reflection", evidence=evidence)
            written += 1
    m.log_event(agent, "reflect", f"{agent.name} reflects: {written} insights")


async def summarize_day(agent: "GenerativeAgent") -> None:
    """At bedtime: a short summary of the day, used to plan tomorrow (paper: 'yesterday')."""
    m = agent.model
    today = m.now.date()
    todays = [r for r in agent.memory.recent(60) if r.created.date() == today]
    if not todays or not m.config.enabled("planning"):
        return
    res = await agent.ask(
        "day_summary",
        {"identity": agent.identity(), "name": agent.name,
         "date": m.now.strftime("%A %d %B")},
        lines=[r.description for r in todays[-30:]], fallback={"summary": ""},
    )
    if not res.value["summary"].strip():
        return
    agent.yesterday = res.value["summary"]
    agent.remember(agent.yesterday, "reflection", evidence=tuple(r.id for r in todays[-30:]))
