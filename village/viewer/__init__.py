"""Viewers of recorded runs, all built on :class:`village.replay.ReplayReader`.

- :mod:`village.viewer.app`: the pygame window (``village replay RUN.db``).
- :mod:`village.viewer.snapshot`: one frame to PNG, headless (``--snapshot out.png``).
- :mod:`village.viewer.terminal`: the Textual replay (``--terminal``).
- :mod:`village.viewer.render`: drawing the map, agents, bubbles, timeline and panels.
- :mod:`village.viewer.playback`: the play/pause/speed/seek clock both viewers share.
- :mod:`village.viewer.style`: colours and action icons both viewers share.
"""
