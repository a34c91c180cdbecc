"""Mesa's own batch_run over Village (docs/sweeps.md).

    python examples/batch_run.py

Two seeds x two ablation settings x 10 steps on the scripted model; each run is recorded
to its own database under replays/batch/ (replayable, comparable with `village compare`).
Mesa's runner returns one row per run with the DataCollector's model-level measures.
"""
from __future__ import annotations

import mesa

from village.batch import VillageBatchModel, rows_frame

if __name__ == "__main__":  # batch_run may use processes: keep the guard
    rows = mesa.batch_run(
        VillageBatchModel,
        parameters={
            "scenario": "demo",
            "llm": "scripted",            # "local" for the bundled model, "openai:..." for a server
            "seed": [1, 2],
            "ablate": ["", "reflection"],
            "steps": 10,                  # the run finishes (and closes its database) here
            "embedder": "hash",
            "out_dir": "replays/batch",
        },
        max_steps=10,
        number_processes=1,               # None = one process per CPU
        display_progress=False,
    )
    df = rows_frame(rows)
    print(df[["seed", "ablate", "Step", "calls", "tokens", "memories", "edges", "density", "db"]]
          .to_string(index=False))
