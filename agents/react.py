"""React: on seeing another agent, decide (a constrained choice) to talk, wait or continue."""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from agents.plan import hhmm

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent

DECISIONS = ("talk", "wait", "continue")


def relationship(agent: "GenerativeAgent", other: "GenerativeAgent") -> str:
    """A relationship summary from the social graph (no model call needed)."""
    g = agent.model.social
    if not g.has_edge(agent.name, other.name):
        return f"{agent.name} does not know {other.name} yet."
    e = g.edges[agent.name, other.name]
    parts = [f"{agent.name} knows {other.name}"]
    if e.get("relation"):
        parts.append(f"({e['relation']})")
    n = e.get("conversations", 0)
    if n:
        parts.append(f"; they have talked {n} time{'s' if n != 1 else ''}")
    return " ".join(parts) + "."


async def react(agent: "GenerativeAgent") -> None:
    """Consider the nearest newly seen agent who is free to talk; at most one reaction a step."""
    m = agent.model
    if agent.busy or agent.action is None:
        return
    other = None
    for ev in agent.new_events:
        cand = m.agent_by_name.get(ev.subject)
        if cand is None or not m.may_talk(agent, cand, thinking=True):
            continue
        last = agent.reacted_to.get(cand.name)
        if last is not None and m.now - last < timedelta(minutes=m.config.react_cooldown_minutes):
            continue
        other, observation = cand, ev.description
        break
    if other is None:
        return
    agent.reacted_to[other.name] = m.now
    await agent.flush_pending()
    hits, _ = agent.retrieve(f"{other.name}: {observation}", k=m.config.k_react, purpose="react")
    res = await agent.ask(
        "react",
        {
            "identity": agent.identity(),
            "name": agent.name,
            "time": hhmm(m.now),
            "action": agent.action.description,
            "place": m.world.place_at(*agent.pos_xy) or "the street",
            "observation": observation,
            "relationship": relationship(agent, other),
            "other": other.name,
        },
        hits=hits,
        fallback={"decision": "continue", "reason": "no valid answer from the model"},
    )
    decision, reason = res.value["decision"], res.value["reason"]
    m.log_event(agent, "react", f"{agent.name} sees {other.name}: {decision} ({reason})")
    if decision == "talk":
        agent.intent.talk_to, agent.intent.reason = other.name, reason
    elif decision == "wait":
        here = m.world.destination_at(*agent.pos_xy) or agent.action.place
        agent.replan(f"waiting for {other.name}", here, m.config.wait_minutes)
