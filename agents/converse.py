"""Converse: a short dialogue between two agents, written in one model call from both
participants' memories about each other and their relationship; then both remember it and
take from it what it means for their plans (in the same call).

The paper (and its released code) asks the model once per utterance and once more per
participant afterwards: ~6 calls a conversation. Here one call writes the whole exchange
(2–4 alternating lines, each speaker one of the two names, constrained by the JSON schema)
and, for each participant, a note and the next action; everything traces back to that one
recorded call (`utterances.call_id`, the `plan` note, the re-planned action)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.plan import hhmm
from agents.react import relationship

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent
    from memory.stream import Scored

PROMPT = "conversation"


@dataclass
class Conversation:
    id: int
    a: "GenerativeAgent"
    b: "GenerativeAgent"
    step_start: int
    place: str
    lines: list[tuple["GenerativeAgent", str, Any]] = field(default_factory=list)
    ended_by: str = ""
    reason: str = ""  # why `a` started it (their reaction), if known

    @property
    def step_end(self) -> int:
        """Agents stay in the conversation one step per utterance (the replay shows one line a
        step), although the whole dialogue came from one call."""
        return self.step_start + max(1, len(self.lines)) - 1

    def transcript(self) -> str:
        return "\n".join(f"{s.name}: {t}" for s, t, _ in self.lines) or "(nothing yet)"


def chat_description(me: "GenerativeAgent", other: "GenerativeAgent", place: str,
                     transcript: str) -> str:
    """The `chat` memory each participant keeps of a conversation."""
    return f"{me.name} talked with {other.name} at {place}: {transcript}"


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?,")


def said_before(me: "GenerativeAgent", other: "GenerativeAgent") -> set[str]:
    """Lines `me` remembers from earlier conversations with `other` (from the memory stream,
    so a resumed run sees exactly what the uninterrupted one saw)."""
    head = f"{me.name} talked with {other.name} at "
    out: set[str] = set()
    for rec in me.memory:
        if rec.kind != "chat" or not rec.description.startswith(head):
            continue
        _, _, transcript = rec.description[len(head):].partition(": ")  # after the place
        for line in transcript.split("\n"):
            _, sep, text = line.partition(": ")
            if sep:
                out.add(_norm(text))
    return out


def _fresh(text: str, seen: set[str], said: set[str]) -> str | None:
    """A line already said — in this dialogue, or between the two before, as their `chat`
    memories hold it (small models loop, and at temperature 0 a similar prompt gives the same
    dialogue again) — is not said again."""
    key = _norm(text)
    if key in said:
        return "repeats an earlier line of theirs"
    if key in seen:
        return "repeats an earlier line of the conversation"
    return None


def usable(lines: list[dict[str, Any]], a: str, b: str, said: set[str]) -> tuple[int, str | None]:
    """How many leading lines make a dialogue — the initiator first, the two taking turns,
    no line said before (`_fresh`) — and why it stops there (None: all of them)."""
    seen: set[str] = set()
    for i, ln in enumerate(lines):
        if ln["speaker"] != (a, b)[i % 2]:
            return i, f"line {i + 1}: the speakers take turns, {a} first"
        problem = _fresh(ln["text"], seen, said)
        if problem:
            return i, f"line {i + 1} {problem}"
        seen.add(_norm(ln["text"]))
    return len(lines), None


def check(value: dict[str, Any], a: str, b: str, said: set[str]) -> str | None:
    """Accept an answer whose first two lines at least make a dialogue (the rest is cut
    where it stops making one); otherwise the runner asks again."""
    n, why = usable(value["lines"], a, b, said)
    return why if n < 2 else None


def next_places(a: "GenerativeAgent", b: "GenerativeAgent") -> list[str]:
    """Where either may go next: here, where each was going, then every area of the town
    (not every room: fewer tokens, and a room is reached through its area's plans)."""
    world = a.model.world
    valid = set(world.destinations())
    out: list[str] = []
    for p in (world.destination_at(*a.pos_xy), world.destination_at(*b.pos_xy),
              a.action.place if a.action else None, b.action.place if b.action else None,
              *world.areas()):
        if p and p in valid and p not in out:
            out.append(p)
    return out


def _fit(agent: "GenerativeAgent", variables: dict[str, Any], hits_a: list["Scored"],
         hits_b: list["Scored"]) -> tuple[dict[str, Any], list[str]]:
    """Fill both memory lists, dropping the lowest-scored of the longer list until the prompt
    fits the context window; returns the variables and what was dropped (recorded)."""
    ha, hb, dropped = list(hits_a), list(hits_b), []
    runner = agent.model.runner

    def fill() -> None:
        variables["a_memories"] = agent.numbered(ha)
        variables["b_memories"] = agent.numbered(hb)

    fill()
    while (ha or hb) and runner.budget(PROMPT, variables) < 0:
        longer = ha if len(ha) >= len(hb) else hb
        dropped.append(longer.pop().record.description)
        fill()
    return variables, dropped


def who(agent: "GenerativeAgent") -> str:
    """A short identity for the dialogue prompt (two of them must fit with their memories)."""
    r = agent.resident
    return f"{r.name}, {r.age} ({', '.join(r.traits)}). {r.currently}"


def _doing(agent: "GenerativeAgent") -> str:
    return agent.action.description if agent.action else "doing nothing in particular"


def _after_fallback(agent: "GenerativeAgent") -> dict[str, Any]:
    return {"person": agent.name, "note": "", "next_action": _doing(agent),
            "place": agent.action.place if agent.action else agent.home, "minutes": 15}


async def converse(conv: Conversation) -> Conversation:
    a, b = conv.a, conv.b
    m = a.model
    cfg = m.config
    # no forced rating first (unlike planning and reflection): records still pending count
    # at the lowest importance in these two retrievals (recorded with their scores)
    query_a = f"{b.name}. {conv.reason}".strip(" .") if conv.reason else b.name
    hits_a, _ = a.retrieve(query_a, k=cfg.k_converse, purpose="converse")
    hits_b, _ = b.retrieve(a.name, k=cfg.k_converse, purpose="converse")
    places = next_places(a, b)
    said = said_before(a, b) | said_before(b, a)
    variables: dict[str, Any] = {
        "time": hhmm(m.now), "place": conv.place, "a": a.name, "b": b.name,
        "reason": f"({a.first_name}'s reason: {conv.reason.strip()})" if conv.reason.strip() else "",
        "a_who": who(a), "b_who": who(b),
        "a_doing": _doing(a), "b_doing": _doing(b),
        "a_relationship": relationship(a, b), "b_relationship": relationship(b, a),
        "places": ", ".join(places),
    }
    variables, dropped = _fit(a, variables, hits_a, hits_b)
    res = await a.ask(
        PROMPT, variables, dropped=dropped,
        enums={"speakers": [a.name, b.name], "first": [a.name], "second": [b.name],
               "places": places},
        check=lambda v: check(v, a.name, b.name, said),
        fallback={"lines": [{"speaker": a.name, "text": "..."}, {"speaker": b.name, "text": "..."}],
                  "after_a": _after_fallback(a), "after_b": _after_fallback(b)},
    )
    by_name = {a.name: a, b.name: b}
    lines = res.value["lines"]
    if not res.fallback_used:
        n, why = usable(lines, a.name, b.name, said)
        if why:  # recorded: the call's answer holds the lines that were left out
            m.log_event(a, "conversation", f"dialogue of {a.name} and {b.name} cut after "
                        f"{n} of {len(lines)} lines: {why}", conv.place)
            lines = lines[:n]
    cap = cfg.max_utterances
    conv.lines = [(by_name[ln["speaker"]], ln["text"].strip() or "...", res.response)
                  for ln in lines[:cap]]
    conv.ended_by = f"cap ({cap} utterances)" if len(lines) > cap else conv.lines[-1][0].name
    transcript = conv.transcript()
    for me, other, after in ((a, b, res.value["after_a"]), (b, a, res.value["after_b"])):
        me.remember(chat_description(me, other, conv.place, transcript), "chat", counts=True)
        take_away(me, after)
    return conv


def take_away(me: "GenerativeAgent", after: dict[str, Any]) -> None:
    """What the conversation means for my plans: remembered as a `plan` record, and the next
    action re-plans the rest of the current window once the conversation is over."""
    note = after["note"].strip()
    if note:
        me.last_note = note
        me.remember(note, "plan")
    me.replan_after_conversation = (after["next_action"].strip() or _doing(me), after["place"],
                                    int(after["minutes"]))
