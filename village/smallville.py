"""Import the personas of the paper's released code ("Smallville") as a Village scenario.

The released code keeps each resident in ``personas/<Name>/bootstrap_memory/scratch.json``
(name, age, innate, learned, currently, lifestyle, daily_plan_req, living_area, vision_r,
att_bandwidth, retention, plus model settings and simulation state). :func:`import_smallville`
puts those residents on one of our town maps (default: the ``valentines`` map, whose public
places carry Smallville's names) and reports, one line each, everything it could not carry
over or had to change. The result is validated as a scenario before it is returned.

Mapping (docs/metrics.md, "Importing Smallville personas"):

* ``name``/``first_name``/``last_name`` → ``name``; ``age`` → ``age``;
  ``innate`` (comma-separated) → ``traits``; ``learned`` → ``background``;
  ``currently`` → ``currently``; ``daily_plan_req`` and ``lifestyle`` → ``routine``;
  wake and sleep times are read from ``lifestyle`` ("goes to bed around 11pm, awakes up
  around 6am"); ``vision_r``/``att_bandwidth``/``retention`` → ``vision_radius`` /
  ``attention_bandwidth`` / ``retention``.
* ``living_area`` ("the Ville:Lin family's house:Mei and John Lin's bedroom"): a public place
  with a counterpart on the map (Hobbs Cafe, Dorm for Oak Hill College → Oak Hill College
  dorm, …) is used as is; every other household gets one of the map's homes, which is renamed
  after it (so "Lin family's house" exists in the imported town). Rooms are kept only when
  the map has a room of that name.
* Place names in the texts are rewritten to the map's names where they differ.
* Optional: the history CSV of the released code (``Name,Whisper``, records separated by
  ``;``) and ``bootstrap_memory/associative_memory/nodes.json`` become seeded memories.
* Not imported (reported): retrieval weights and reflection settings (run settings in
  Village, ``SimConfig``), simulation state (current time, tile, schedule, action, chat),
  spatial memory (our agents know the map's places), relationships (scratch.json has none).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from village.scenario import Scenario, ScenarioError, load_scenario, parse_scenario


class SmallvilleError(ValueError):
    """A problem that stops the import (one line)."""


# Smallville's public places and their counterparts on our maps (used when the map has them).
ALIASES = {
    "hobbs cafe": "Hobbs Cafe",
    "the rose and crown pub": "The Rose and Crown Pub",
    "harvey oak supply store": "Harvey Oak Supply Store",
    "the willows market and pharmacy": "The Willows Market",
    "johnson park": "Johnson Park",
    "oak hill college": "Oak Hill College",
    "dorm for oak hill college": "Oak Hill College dorm",
    "artist's co-living space": "Artists' loft",
}
# The places of the released map (the_ville), to spot texts that name a place we do not have.
SMALLVILLE_PLACES = [
    "artist's co-living space", "Arthur Burton's apartment", "Ryan Park's apartment",
    "Isabella Rodriguez's apartment", "Giorgio Rossi's apartment", "Carlos Gomez's apartment",
    "The Rose and Crown Pub", "Hobbs Cafe", "Oak Hill College", "Dorm for Oak Hill College",
    "Johnson Park", "Harvey Oak Supply Store", "The Willows Market and Pharmacy",
    "Adam Smith's house", "Yuriko Yamamoto's house", "Moore family's house",
    "Tamara Taylor and Carmen Ortiz's house", "Moreno family's house", "Lin family's house",
]
MAPPED_FIELDS = {"name", "first_name", "last_name", "age", "innate", "learned", "currently",
                 "lifestyle", "daily_plan_req", "living_area", "vision_r", "att_bandwidth",
                 "retention"}
SETTINGS_FIELDS = {"recency_w", "relevance_w", "importance_w", "recency_decay",
                   "importance_trigger_max", "importance_trigger_curr", "importance_ele_n",
                   "thought_count", "concept_forget", "daily_reflection_time",
                   "daily_reflection_size", "overlap_reflect_th", "kw_strg_event_reflect_th",
                   "kw_strg_thought_reflect_th"}
STATE_FIELDS = {"curr_time", "curr_tile", "daily_req", "f_daily_schedule",
                "f_daily_schedule_hourly_org", "act_address", "act_start_time", "act_duration",
                "act_description", "act_pronunciatio", "act_event", "act_obj_description",
                "act_obj_pronunciatio", "act_obj_event", "chatting_with", "chat",
                "chatting_with_buffer", "chatting_end_time", "act_path_set", "planned_path"}


@dataclass
class Persona:
    folder: Path
    data: dict[str, Any]
    nodes: list[str] = field(default_factory=list)  # associative memory descriptions


@dataclass
class ImportResult:
    toml: str
    scenario: Scenario
    residents: list[str]
    homes: dict[str, str]  # Smallville living area -> home on our map
    unmapped: list[str]  # what could not be carried over
    changed: list[str]  # what was carried over with a change


# ---------------------------------------------------------------------------- reading
def find_personas(directory: str | Path) -> list[Path]:
    """Persona folders under ``directory``: the storage folder (with ``personas/``), the
    ``personas`` folder itself, or one persona folder."""
    d = Path(directory)
    if not d.is_dir():
        raise SmallvilleError(f"{d}: not a folder")
    if (d / "bootstrap_memory" / "scratch.json").is_file():
        return [d]
    base = d / "personas" if (d / "personas").is_dir() else d
    found = sorted(p for p in base.iterdir() if (p / "bootstrap_memory" / "scratch.json").is_file())
    if not found:
        raise SmallvilleError(f"{d}: no persona folders (expected personas/<Name>/bootstrap_memory/scratch.json)")
    return found


def read_personas(directory: str | Path, problems: list[str] | None = None) -> list[Persona]:
    out = []
    for folder in find_personas(directory):
        path = folder / "bootstrap_memory" / "scratch.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if problems is not None:
                problems.append(f"{folder.name}: {path.name} unreadable ({exc}); persona skipped")
            continue
        nodes: list[str] = []
        npath = folder / "bootstrap_memory" / "associative_memory" / "nodes.json"
        if npath.is_file():
            try:
                raw = json.loads(npath.read_text(encoding="utf-8")) or {}
                items = sorted(raw.values(), key=lambda n: (str(n.get("created", "")), n.get("node_count", 0)))
                nodes = [str(n["description"]).strip() for n in items
                         if isinstance(n, dict) and str(n.get("description", "")).strip()]
            except (OSError, ValueError, AttributeError) as exc:
                if problems is not None:
                    problems.append(f"{folder.name}: associative_memory/nodes.json unreadable ({exc}); ignored")
        out.append(Persona(folder, data, nodes))
    return out


def read_history(path: str | Path) -> dict[str, list[str]]:
    """The released code's ``agent_history_init_*.csv``: ``Name,Whisper`` rows whose whisper
    holds memory records separated by ``;``."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SmallvilleError(f"{path}: cannot read history ({exc.strerror or exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    out: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        if not row or (i == 0 and row[0].strip().lower() == "name"):
            continue
        if len(row) < 2:
            raise SmallvilleError(f"{path}: row {i + 1}: expected Name,Whisper")
        out.setdefault(row[0].strip(), []).extend(s.strip() for s in row[1].split(";") if s.strip())
    return out


# ---------------------------------------------------------------------------- helpers
_CLOCK = r"(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s*m\b\.?"
_WAKE = re.compile(r"(?:awakes?|awake|wakes?|gets?|rises?)\s+(?:up\s+)?(?:around|at|by|about)?\s*" + _CLOCK, re.I)
_SLEEP = re.compile(r"(?:goes|go|going)\s+to\s+(?:bed|sleep)\s+(?:around|at|by|about)?\s*" + _CLOCK, re.I)


_NUMBERED = re.compile(r"^(room|bedroom)\s*\d+$", re.I)


def _clock(m: re.Match[str]) -> time:
    h, mins, ap = int(m[1]) % 12, int(m[2] or 0), m[3].lower()
    return time(h + (12 if ap == "p" else 0), min(mins, 59))


def parse_lifestyle(text: str) -> tuple[time | None, time | None]:
    """(wake, sleep) from e.g. "goes to bed around 11pm, awakes up around 6am"."""
    w, s = _WAKE.search(text or ""), _SLEEP.search(text or "")
    return (_clock(w) if w else None), (_clock(s) if s else None)


def _area_room(living_area: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in str(living_area).split(":") if p.strip()]
    if parts and parts[0].lower() in ("the ville", "the_ville"):
        parts = parts[1:]
    if not parts:
        return "", None
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _q(s: Any) -> str:
    return json.dumps(s, ensure_ascii=False)


def _areas_of(sc: Scenario) -> dict[str, list[str]]:
    """Area -> its rooms, from the map's legend (in first-appearance order)."""
    areas: dict[str, list[str]] = {}
    for v in sc.map.legend.values():
        if v.lower() == "wall":
            continue
        area, _, room = v.partition(":")
        areas.setdefault(area, [])
        if room and room not in areas[area]:
            areas[area].append(room)
    return areas


# ---------------------------------------------------------------------------- the import
def import_smallville(directory: str | Path, *, base: str | Path | Scenario = "valentines",
                      name: str = "smallville", history: str | Path | None = None,
                      keep_facts: bool = True) -> ImportResult:
    """Convert persona folders to a scenario on ``base``'s map (see the module docs)."""
    unmapped: list[str] = []
    changed: list[str] = []
    personas = read_personas(directory, unmapped)
    if not personas:
        raise SmallvilleError(f"{directory}: no readable persona")
    try:
        sc = base if isinstance(base, Scenario) else load_scenario(base)
    except ScenarioError as exc:
        raise SmallvilleError(f"--map: {exc}") from None
    areas = _areas_of(sc)
    lower = {a.lower(): a for a in areas}
    hist = read_history(history) if history else {}

    # -- who, and where they live ----------------------------------------------------------
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    for p in personas:
        d = p.data
        nm = str(d.get("name") or " ".join(str(d.get(k) or "") for k in ("first_name", "last_name")).strip()
                 or p.folder.name).strip()
        if nm.lower() in seen:
            unmapped.append(f"{nm}: a second persona with this name ({p.folder.name}); skipped")
            continue
        seen.add(nm.lower())
        area, room = _area_room(d.get("living_area") or "")
        people.append({"p": p, "name": nm, "area": area, "room": room})

    households: dict[str, list[str]] = {}  # Smallville area -> residents
    for x in people:
        households.setdefault(x["area"], []).append(x["name"])
    target: dict[str, str] = {}  # Smallville area -> our area
    for area in households:
        key = area.lower()
        if key in lower:
            target[area] = lower[key]
        elif key in ALIASES and ALIASES[key] in areas:
            target[area] = ALIASES[key]
    homes_base: list[str] = []
    cap: dict[str, int] = {}
    for r in sc.residents:
        a = r.home.split(":")[0]
        if a not in homes_base:
            homes_base.append(a)
        cap[a] = cap.get(a, 0) + 1
    free = [a for a in homes_base if a not in target.values()]
    todo = sorted((a for a in households if a not in target), key=lambda a: -len(households[a]))
    renames: dict[str, str] = {}
    shared: dict[str, list[str]] = {}
    for area in todo:
        size = len(households[area])
        if free:
            fits = [a for a in free if cap[a] >= size]
            pick = min(fits, key=lambda a: (cap[a], homes_base.index(a))) if fits else max(
                free, key=lambda a: (cap[a], -homes_base.index(a)))
            free.remove(pick)
            target[area] = pick
            if area and area not in areas and ":" not in area and area.lower() != "wall":
                renames[pick] = area
        else:
            used = [a for a in dict.fromkeys(target.values()) if a in homes_base] or homes_base
            pick = min(used, key=lambda a: (len(shared.get(a, [])), used.index(a)))
            target[area] = pick
            shared.setdefault(pick, []).append(area)
    for pick, extra in shared.items():  # a shared home keeps one name: the first household's
        for area in extra:
            unmapped.append(f"living area '{area}': the map has no home left; its residents "
                            f"({', '.join(households[area])}) share '{renames.get(pick, pick)}'")

    def final(a: str) -> str:
        return renames.get(a, a)

    homes = {a: final(t) for a, t in target.items()}
    for area, t in target.items():
        if not area:
            continue
        if t in renames and renames[t] == area:
            changed.append(f"living area '{area}' → the map's '{t}', renamed '{area}'")
        elif area.lower() != t.lower() and area not in sum(shared.values(), []):
            changed.append(f"living area '{area}' → '{final(t)}'")

    # text rewriting: Smallville place names -> ours
    rewrite: dict[str, str] = {}
    for key, ours in ALIASES.items():
        if ours in areas and key != ours.lower():
            rewrite[key] = final(ours)
    for area, t in target.items():
        if area and area.lower() != final(t).lower():
            rewrite[area.lower()] = final(t)
    rw_pat = re.compile("|".join(re.escape(k) for k in sorted(rewrite, key=len, reverse=True)), re.I) \
        if rewrite else None
    rewrites: dict[tuple[str, str], int] = {}

    def fix(text: str) -> str:
        if rw_pat is None:
            return text

        def sub(m: re.Match[str]) -> str:
            new = rewrite[m[0].lower()]
            rewrites[(m[0], new)] = rewrites.get((m[0], new), 0) + 1
            return new
        return rw_pat.sub(sub, text)

    known_missing = [pl for pl in SMALLVILLE_PLACES
                     if pl.lower() not in rewrite and pl.lower() not in lower]

    # -- residents --------------------------------------------------------------------------
    out_res: list[dict[str, Any]] = []
    taken: set[tuple[str, str]] = set()
    for x in people:
        d, nm = x["p"].data, x["name"]
        extra = sorted(set(d) - MAPPED_FIELDS - SETTINGS_FIELDS - STATE_FIELDS)
        if extra:
            unmapped.append(f"{nm}: unknown field(s) {', '.join(extra)} not imported")
        state = sorted(k for k in STATE_FIELDS if d.get(k) not in (None, [], {}, False, "", [None, None, None])
                       and not (k == "act_event" and isinstance(d.get(k), list) and all(v in (None, nm) for v in d[k])))
        if state:
            unmapped.append(f"{nm}: simulation state {', '.join(state)} dropped (a scenario starts fresh)")
        age = d.get("age")
        if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 130:
            unmapped.append(f"{nm}: age {age!r} is not an integer in 0..130; set to 30 (edit it)")
            age = 30
        traits = [t.strip() for t in str(d.get("innate") or "").split(",") if t.strip()]
        wake, sleep = parse_lifestyle(str(d.get("lifestyle") or ""))
        missing = [w for w, v in (("wake time (07:00 used)", wake), ("bedtime (22:00 used)", sleep)) if v is None]
        if missing:
            unmapped.append(f"{nm}: no {' or '.join(missing)} in lifestyle {str(d.get('lifestyle') or '')!r}")
        wake = wake or time(7, 0)
        sleep = sleep or time(22, 0)
        if sleep <= wake:
            unmapped.append(f"{nm}: bedtime {sleep:%H:%M} is after midnight, which Village does not "
                            "support yet; set to 23:59")
            sleep = time(23, 59)
        routine = " ".join(s for s in (str(d.get("daily_plan_req") or "").strip(),
                                       str(d.get("lifestyle") or "").strip()) if s)
        area, room = x["area"], x["room"]
        if not area:
            home = homes_base[0]
            unmapped.append(f"{nm}: no living_area; home set to '{final(home)}'")
            home = final(home)
        else:
            ours = target[area]
            rooms = areas.get(ours, [])
            match = next((r for r in rooms if room and r.lower() == room.lower()), None)
            if match is None and room:  # a numbered room (a dorm's) of its own, while any is free
                match = next((r for r in rooms if _NUMBERED.match(r) and (ours, r) not in taken), None)
                if match:
                    changed.append(f"{nm}: room '{room}' → '{final(ours)}:{match}'")
                else:
                    changed.append(f"{nm}: room '{room}' is not on the map; home is the area '{final(ours)}'")
            if match:
                taken.add((ours, match))
            home = f"{final(ours)}:{match}" if match else final(ours)
        mems = list(x["p"].nodes) + hist.pop(nm, [])
        res: dict[str, Any] = {
            "name": nm, "age": age, "traits": traits,
            "background": fix(str(d.get("learned") or "")),
            "currently": fix(str(d.get("currently") or "")),
            "routine": fix(routine), "home": home,
            "wake": f"{wake:%H:%M}", "sleep": f"{sleep:%H:%M}",
            "memories": [fix(m) for m in mems],
        }
        for src, dst, lo, hi in (("vision_r", "vision_radius", 0, 50), ("att_bandwidth", "attention_bandwidth", 1, 50),
                                 ("retention", "retention", 0, 1000)):
            v = d.get(src)
            if v is None:
                continue
            if isinstance(v, int) and not isinstance(v, bool):
                if not lo <= v <= hi:
                    changed.append(f"{nm}: {src} {v} clamped to {lo}..{hi}")
                res[dst] = min(hi, max(lo, v))
            else:
                unmapped.append(f"{nm}: {src} {v!r} is not an integer; default used")
        texts = " ".join([res["background"], res["currently"], res["routine"], *res["memories"]])
        for pl in known_missing:
            if re.search(re.escape(pl), texts, re.I):
                unmapped.append(f"{nm}: mentions '{pl}', a Smallville place with no counterpart on the map")
        out_res.append(res)
    for who in hist:
        unmapped.append(f"history: '{who}' is not among the imported personas; their records ignored")

    settings = sorted({k for x in people for k in x["p"].data if k in SETTINGS_FIELDS})
    if settings:
        unmapped.append("model settings " + ", ".join(settings) + " are not scenario fields in Village "
                        "(retrieval weights and reflection threshold are run settings, SimConfig); not imported")
    unmapped.append("relationships: scratch.json has none, so the social graph starts empty; add "
                    "[residents.relationships] or seed 'X knows Y' memories (--history)")
    if any((x["p"].folder / "bootstrap_memory" / "spatial_memory.json").is_file() for x in people):
        changed.append("spatial_memory.json ignored: Village agents know the map's places")
    for (old, new), n in sorted(rewrites.items()):
        if old.lower() != new.lower():
            changed.append(f"text: '{old}' → '{new}' ({n}×)")

    text = _emit(sc, out_res, renames, name, directory, keep_facts)
    try:
        result = parse_scenario(text, f"<import of {directory}>")
    except ScenarioError as exc:
        raise SmallvilleError(f"the imported scenario does not validate: {exc}") from None
    return ImportResult(text, result, [r["name"] for r in out_res], homes, unmapped, changed)


def _rename(place: str, renames: dict[str, str]) -> str:
    area, sep, rest = place.partition(":")
    return renames.get(area, area) + sep + rest


def _emit(sc: Scenario, residents: list[dict[str, Any]], renames: dict[str, str], name: str,
          directory: str | Path, keep_facts: bool) -> str:
    out = [f"# Imported from Smallville personas ({Path(directory).name}) by `village import-smallville`",
           f"# onto the map of the '{sc.name}' scenario. Format: docs/scenarios.md.", "",
           "[scenario]", f"name = {_q(name)}",
           f"description = {_q(f'Smallville residents on the {sc.name} map')}",
           f"start = {_q(sc.start.isoformat(timespec='seconds'))}",
           f"seconds_per_step = {sc.seconds_per_step}", f"seed = {sc.seed}", "", "[map]", "grid = ["]
    out += [f"    {_q(row)}," for row in sc.map.rows]
    out += ["]", "", "[map.legend]"]
    out += [f"{_q(k)} = {_q(v if v.lower() == 'wall' else _rename(v, renames))}" for k, v in sc.map.legend.items()]
    for o in sc.map.objects:
        out += ["", "[[map.objects]]", f"name = {_q(o.name)}", f"place = {_q(_rename(o.place, renames))}",
                f"at = [{o.at[0]}, {o.at[1]}]"]
    for r in residents:
        out += ["", "[[residents]]"]
        for k, v in r.items():
            if k == "memories":
                out.append("memories = [" + ("" if not v else "\n" + "".join(f"    {_q(m)},\n" for m in v)) + "]")
            elif isinstance(v, list):
                out.append(f"{k} = [" + ", ".join(_q(t) for t in v) + "]")
            elif isinstance(v, int):
                out.append(f"{k} = {v}")
            else:
                out.append(f"{k} = {_q(v)}")
    if keep_facts:
        for f in sc.facts:
            out += ["", "[[facts]]", f"name = {_q(f.name)}",
                    "keywords = [" + ", ".join(_q(k) for k in f.keywords) + "]"]
            if f.place:
                out.append(f"place = {_q(_rename(f.place, renames))}")
            if f.start:
                out.append(f"start = {_q(f.start.isoformat(timespec='seconds'))}")
            if f.end:
                out.append(f"end = {_q(f.end.isoformat(timespec='seconds'))}")
    return "\n".join(out) + "\n"
