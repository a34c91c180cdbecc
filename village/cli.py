"""The `village` command line. Every command's help ends with an example.

Errors a user can cause (bad scenario, bad option, missing file) print one line and exit
with status 2; a model that fails for good prints one line and exits 1, leaving the run
database valid.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from agents.llm.base import ModelError
from village.config import ABLATIONS, SimConfig
from village.scenario import ScenarioError

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="village")
def main() -> None:
    """Village: generative agent simulations, recorded to SQLite.

    \b
    Example:
        village run demo --hours 1
    """


@main.command()
@click.argument("scenario")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Simulated hours to run (default: the scenario's morning, 5 h).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps to run instead of hours.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run database to write (default: replays/SCENARIO-TIMESTAMP.db).")
@click.option("--llm", "llm_spec", default="local", show_default=True,
              help="Model backend: local (bundled SmolLM2), gguf:PATH, scripted.")
@click.option("--embedder", default="local", show_default=True,
              help="Embedder: local (bundled all-MiniLM-L6-v2) or hash[:DIM] (test double).")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--ablate", multiple=True, type=click.Choice(ABLATIONS),
              help="Remove a module, as in the paper's evaluation (repeatable).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the shared response cache.")
@click.option("--cache-path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Response cache file (default: the user cache directory; env VILLAGE_CACHE_DIR).")
@click.option("--n-ctx", type=click.IntRange(min=512), default=4096, show_default=True,
              help="Context window for in-process GGUF models.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for in-process GGUF models (default: all cores).")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def run(scenario: str, hours: float | None, steps: int | None, out: Path | None, llm_spec: str,
        embedder: str, seed: int | None, ablate: tuple[str, ...], no_cache: bool,
        cache_path: Path | None, n_ctx: int, threads: int | None, quiet: bool) -> None:
    """Run SCENARIO (a name under scenarios/ or a path) and record it.

    \b
    Examples:
        village run demo                       # a simulated morning on the bundled model
        village run demo --hours 1 --seed 7 --out replays/demo-7.db
        village run scenarios/demo.toml --steps 30 --ablate reflection
    """
    from village import simulate
    from village.summary import print_summary, summarize

    if hours is not None and steps is not None:
        fail("--hours and --steps: give one of them, not both")
    opts = simulate.RunOptions(llm=llm_spec, embedder=embedder, seed=seed, out=out,
                               cache=not no_cache, cache_path=cache_path, n_ctx=n_ctx, n_threads=threads,
                               config=SimConfig(ablate=frozenset(ablate)))
    try:
        model = simulate.build(scenario, opts)
    except (ScenarioError, FileExistsError, ValueError, ModelError) as exc:
        fail(str(exc))
    n = model.steps_for(hours=hours if hours is not None or steps is not None else 5.0, steps=steps)
    path = model.recorder.path
    if not quiet:
        console.print(f"Recording to [bold]{path}[/bold] ({n} steps of {model.seconds_per_step} s,"
                      f" {len(model.residents)} residents, model {model.llm.name})")
    t0 = time.perf_counter()
    try:
        if quiet:
            result = simulate.run(model, n)
        else:
            with Progress(TextColumn("[bold]{task.fields[clock]}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} steps"),
                          TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                          console=console, transient=False) as bar:
                task = bar.add_task("run", total=n, clock="", rate="")

                def on_step(m) -> None:  # noqa: ANN001
                    el = max(time.perf_counter() - t0, 1e-9)
                    snap = m.accounting.totals()
                    toks = snap["prompt_tokens"] + snap["completion_tokens"]
                    bar.update(task, advance=1, clock=m.now.strftime("%a %H:%M:%S"),
                               rate=f"{m.steps / el:.1f} steps/s · {snap['calls']} calls · "
                                    f"{snap['completion_tokens'] / el:.0f} tok/s · {toks} tok")

                result = simulate.run(model, n, on_step)
    except ModelError as exc:
        fail(f"{exc} (run saved up to its last step in {path})", code=1)
    except KeyboardInterrupt:
        fail(f"interrupted; recorded up to the last finished step in {path}", code=130)
    if not quiet:
        print_summary(summarize(result.path), Console())
        click.echo(f"Recorded {result.steps} steps in {result.wall_s:.1f} s to {result.path}")
    else:
        click.echo(str(result.path))


@main.command()
@click.argument("run_db", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def summary(run_db: Path) -> None:
    """Print the summary of a recorded run.

    \b
    Example:
        village summary replays/demo-20260101-120000.db
    """
    from village.summary import print_summary, summarize

    try:
        s = summarize(run_db)
    except Exception as exc:  # a database that is not a Village run
        fail(f"{run_db}: not a readable Village run ({exc})")
    print_summary(s, Console())


@main.command()
def scenarios() -> None:
    """List the shipped scenarios.

    \b
    Example:
        village scenarios
    """
    from village.scenario import list_scenarios, load_scenario

    for name in list_scenarios():
        try:
            sc = load_scenario(name)
            click.echo(f"{name}\t{len(sc.residents)} residents\t{sc.scenario.description}")
        except ScenarioError as exc:
            click.echo(f"{name}\t(invalid: {exc})")


if __name__ == "__main__":
    main()
