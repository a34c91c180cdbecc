"""Converse: a dialogue between two agents, one utterance at a time, each from the speaker's
memories about the partner, the relationship and the dialogue so far; then both remember it
and note what it means for their plans."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.plan import hhmm
from agents.react import relationship

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent


@dataclass
class Conversation:
    id: int
    a: "GenerativeAgent"
    b: "GenerativeAgent"
    step_start: int
    place: str
    lines: list[tuple["GenerativeAgent", str, Any]] = field(default_factory=list)
    ended_by: str = ""

    @property
    def step_end(self) -> int:
        """Agents stay in the conversation one step per utterance."""
        return self.step_start + max(1, len(self.lines)) - 1

    def transcript(self) -> str:
        return "\n".join(f"{s.name}: {t}" for s, t, _ in self.lines) or "(nothing yet)"


def _fresh(line: str, conv: Conversation) -> str | None:
    """Reject a line already said in this conversation (small models loop); the runner
    then re-asks, and only a recorded fallback ends the conversation."""
    said = {t.strip().lower() for _, t, _ in conv.lines}
    return "repeats an earlier line of the conversation" if line.strip().lower() in said else None


async def converse(conv: Conversation) -> Conversation:
    a, b = conv.a, conv.b
    m = a.model
    cap = m.config.max_utterances
    for i in range(cap):
        speaker, listener = (a, b) if i % 2 == 0 else (b, a)
        last = conv.lines[-1][1] if conv.lines else ""
        await speaker.flush_pending()
        hits, _ = speaker.retrieve(f"{listener.name}. {last}".strip(), k=m.config.k_converse,
                                   purpose="converse")
        res = await speaker.ask(
            "utterance",
            {
                "identity": speaker.identity(),
                "name": speaker.name,
                "other": listener.name,
                "time": hhmm(m.now),
                "place": conv.place,
                "relationship": relationship(speaker, listener),
                "transcript": conv.transcript(),
            },
            hits=hits,
            check=lambda v: _fresh(v["utterance"], conv),
            fallback={"utterance": "...", "end": True},
        )
        conv.lines.append((speaker, res.value["utterance"].strip() or "...", res.response))
        if res.value["end"] and i >= 1:  # a greeting alone does not end it
            conv.ended_by = speaker.name
            break
    else:
        conv.ended_by = f"cap ({cap} utterances)"
    transcript = conv.transcript()
    for me, other in ((a, b), (b, a)):
        me.remember(f"{me.name} talked with {other.name} at {conv.place}: {transcript}", "chat",
                    counts=True)
        await note_plans(me, other, conv, transcript)
    return conv


async def note_plans(me: "GenerativeAgent", other: "GenerativeAgent", conv: Conversation,
                     transcript: str) -> None:
    """What the conversation means for my plans; re-plan the rest of the current window."""
    m = me.model
    places = m.world.destinations()
    doing = me.action.description if me.action else "nothing in particular"
    res = await me.ask(
        "conversation_note",
        {
            "identity": me.identity(), "name": me.name, "other": other.name,
            "time": hhmm(m.now), "place": conv.place, "transcript": transcript,
            "plan": doing, "places": ", ".join(places),
        },
        enums={"places": places},
        fallback={"note": "", "next_action": doing,
                  "place": me.action.place if me.action else me.home, "minutes": 15},
    )
    v = res.value
    if v["note"].strip():
        me.last_note = v["note"]
        me.remember(v["note"], "plan")
    me.replan_after_conversation = (v["next_action"], v["place"], int(v["minutes"]))
