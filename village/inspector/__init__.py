"""The TUI inspector (Textual): ``village inspect RUN.db [--follow]``.

Read-only: it answers "why did this agent do that?" from a recorded run — the town at any
step, each agent's memory stream, plans, conversations and reflections, the retrieval probe
(the agent's own scoring code on its memories as of a step), every model call, and
interviews (the one thing it writes: a row in the run's ``interviews`` table).

Everything is read through :class:`village.replay.ReplayReader`. See docs/inspector.md.
"""
from village.inspector.app import InspectorApp

__all__ = ["InspectorApp"]
