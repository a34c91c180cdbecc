"""The `village` command line. Every command's help ends with an example.

Errors a user can cause (bad scenario, bad option, missing file) print one line and exit
with status 2; a model that fails for good prints one line and exits 1, leaving the run
database valid.
"""
from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import fields
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from agents.llm.base import ModelError
from agents.llm.wrappers import RetryPolicy
from village.config import ABLATIONS, SimConfig
from village.scenario import ScenarioError

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


class _OneLineErrors(click.Group):
    """Usage errors (a bad option, a missing argument) as one line too, exit status 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):  # noqa: ANN002, ANN003, ANN201
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "village"
            fail(f"{' '.join(exc.format_message().split())} (see: {where} --help)", exc.exit_code)
        except click.ClickException as exc:
            fail(" ".join(exc.format_message().split()), exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted", 130)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
              help="Simulated hours to run (default 3: a morning, 07:00-10:00 in demo).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Steps to run instead of hours.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run database to write (default: replays/SCENARIO-TIMESTAMP.db).")
@click.option("--llm", "llm_spec", default="local", show_default=True,
              help="Model backend: local (bundled SmolLM2), gguf:PATH, "
                   "openai:BASE_URL#model=NAME (any OpenAI-compatible server; docs/models.md), "
                   "llm:MODEL_ID, scripted.")
@click.option("--llm-concurrency", type=click.IntRange(min=1), default=None,
              help="Model calls in flight at once (default: local 1, openai 8, llm 4, scripted 64).")
@click.option("--llm-model", default=None, help="Model name for openai: / llm: (overrides the spec's).")
@click.option("--api-key-env", default=None, metavar="VAR",
              help="Environment variable holding the API key for openai: (default OPENAI_API_KEY).")
@click.option("--llm-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per model HTTP request before it is retried (openai:; default 60).")
@click.option("--llm-retries", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts per model call on timeouts, connection errors, 429 and 5xx.")
@click.option("--embedder", default="local", show_default=True,
              help="Embedder: local (bundled all-MiniLM-L6-v2), openai-embed:BASE_URL#model=NAME "
                   "or hash[:DIM] (test double).")
@click.option("--seed", type=int, default=None, help="Seed (default: the scenario's).")
@click.option("--ablate", multiple=True, type=click.Choice(ABLATIONS),
              help="Remove a module, as in the paper's evaluation (repeatable).")
@click.option("--set", "knobs", multiple=True, metavar="NAME=VALUE",
              help="A number knob of village.config.SimConfig, e.g. reflection_min_minutes=0 "
                   "for the paper's reflection rule alone (repeatable; recorded in runs.config).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the shared response cache.")
@click.option("--cache-path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Response cache file (default: the user cache directory; env VILLAGE_CACHE_DIR).")
@click.option("--n-ctx", type=click.IntRange(min=512), default=4096, show_default=True,
              help="Context window for in-process GGUF models.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for in-process GGUF models (default: all cores).")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def run(scenario: str, hours: float | None, steps: int | None, out: Path | None, llm_spec: str,
        llm_concurrency: int | None, llm_model: str | None, api_key_env: str | None,
        llm_timeout: float | None, llm_retries: int, embedder: str, seed: int | None,
        ablate: tuple[str, ...], knobs: tuple[str, ...], no_cache: bool,
        cache_path: Path | None, n_ctx: int, threads: int | None, quiet: bool) -> None:
    """Run SCENARIO (a name under scenarios/ or a path) and record it.

    \b
    Examples:
        village run demo                       # a simulated morning on the bundled model
        village run demo --hours 1 --seed 7 --out replays/demo-7.db
        village run scenarios/demo.toml --steps 30 --ablate reflection
        village run valentines --hours 1 --set reflection_min_minutes=0 --set cooldown_minutes=30
    """
    from village import simulate
    from village.recorder import RecordingError

    if hours is not None and steps is not None:
        fail("--hours and --steps: give one of them, not both")
    opts = simulate.RunOptions(llm=llm_spec, embedder=embedder, seed=seed, out=out,
                               cache=not no_cache, cache_path=cache_path, n_ctx=n_ctx, n_threads=threads,
                               config=sim_config(ablate, knobs),
                               llm_concurrency=llm_concurrency, llm_model=llm_model,
                               api_key_env=api_key_env, llm_timeout=llm_timeout,
                               retry=RetryPolicy(attempts=llm_retries))
    try:
        model = simulate.build(scenario, opts)
    except simulate.RunFailedError as exc:  # the model failed at step 0: a model failure
        fail(str(exc), code=1)
    except RecordingError as exc:  # disk full at step 0
        fail(str(exc), code=1)
    except (ScenarioError, FileExistsError, ValueError, ModelError) as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:  # an --out that cannot be written
        fail(f"{out or 'replays/'}: cannot write the run database "
             f"({' '.join(str(getattr(exc, 'strerror', None) or exc).split())})")
    n = model.steps_for(hours=hours if hours is not None or steps is not None else 3.0, steps=steps)
    path = model.recorder.path
    if not quiet:
        console.print(f"Recording to [bold]{path}[/bold] ({n} steps of {model.seconds_per_step} s,"
                      f" {len(model.residents)} residents, model {model.llm.name})")
    _drive(model, n, quiet)


def sim_config(ablate: tuple[str, ...], knobs: tuple[str, ...]) -> SimConfig:
    """A `SimConfig` from --ablate and --set NAME=VALUE (number knobs only)."""
    numbers = {f.name: f.type for f in fields(SimConfig) if f.type in ("int", "float", int, float)}
    values: dict[str, int | float] = {}
    for knob in knobs:
        name, eq, text = knob.partition("=")
        name = name.strip()
        if not eq or name not in numbers:
            fail(f"--set {knob}: expected NAME=VALUE with NAME one of {', '.join(sorted(numbers))}")
        kind = int if numbers[name] in ("int", int) else float
        try:
            values[name] = kind(text.strip())
        except ValueError:
            fail(f"--set {knob}: {name} takes {'a whole number' if kind is int else 'a number'}")
        if values[name] < 0:
            fail(f"--set {knob}: {name} cannot be negative")
    return SimConfig(ablate=frozenset(ablate), **values)


def _drive(model, n: int, quiet: bool) -> None:  # noqa: ANN001 - a VillageModel
    """Run `n` steps with a progress bar; one line and a resumable database on any stop."""
    from village import simulate
    from village.recorder import RecordingError
    from village.summary import print_summary, summarize

    path = model.recorder.path
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
                first = model.steps

                def on_step(m) -> None:  # noqa: ANN001
                    el = max(time.perf_counter() - t0, 1e-9)
                    snap = m.accounting.totals()
                    toks = snap["prompt_tokens"] + snap["completion_tokens"]
                    bar.update(task, advance=1, clock=m.now.strftime("%a %H:%M:%S"),
                               rate=f"{(m.steps - first) / el:.1f} steps/s · {snap['calls']} calls · "
                                    f"{snap['completion_tokens'] / el:.0f} tok/s · {toks} tok")

                result = simulate.run(model, n, on_step)
    except ModelError as exc:
        fail(f"{exc} (run saved up to its last step in {path}; continue with: "
             f"village resume {path})", code=1)
    except RecordingError as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        fail(f"interrupted; recorded up to the last finished step in {path} "
             f"(continue with: village resume {path})", code=130)
    if result.status == "interrupted":
        fail(f"interrupted after step {result.steps}; recorded in {path} "
             f"(continue with: village resume {path})", code=130)
    if not quiet:
        print_summary(summarize(result.path), Console())
        share = result.recording_s / result.stepping_s if result.stepping_s else 0.0
        click.echo(f"Recorded {result.steps} steps in {result.wall_s:.1f} s to {result.path} "
                   f"(recording took {result.recording_s:.2f} s, {share:.1%} of step time)")
    else:
        click.echo(str(result.path))


def _stack_options(llm_spec: str | None, no_cache: bool, cache_path: Path | None,
                   threads: int | None, llm_timeout: float | None):  # noqa: ANN202
    from village.simulate import Overrides

    return Overrides(llm=llm_spec, cache=False if no_cache else None, cache_path=cache_path,
                     n_threads=threads, llm_timeout=llm_timeout)


def _stack_flags(f):  # noqa: ANN001, ANN202 - the options resume and fork share
    for opt in reversed([
        click.option("--steps", type=click.IntRange(min=0), default=None,
                     help="Steps to run (default: up to the run's own target)."),
        click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Simulated hours to run instead."),
        click.option("--llm", "llm_spec", default=None,
                     help="Model backend (default: the one the run was started with)."),
        click.option("--llm-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Seconds per model HTTP request (openai:; default: as recorded)."),
        click.option("--no-cache", is_flag=True, help="Do not use the response cache."),
        click.option("--cache-path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Response cache file (default: the one the run used)."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads for in-process GGUF models."),
        click.option("--quiet", is_flag=True, help="No progress bar or summary."),
    ]):
        f = opt(f)
    return f


@main.command()
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@_stack_flags
def resume(run_db: Path, steps: int | None, hours: float | None, llm_spec: str | None,
           llm_timeout: float | None, no_cache: bool, cache_path: Path | None,
           threads: int | None, quiet: bool) -> None:
    """Continue a stopped run (killed, Ctrl-C, disk full, model failure) from its last
    committed step, with the options it was started with, up to the step it was going to.

    With the response cache the continuation is identical to an uninterrupted run.

    \b
    Examples:
        village resume replays/demo-20260101-120000.db
        village resume replays/demo.db --steps 360      # or extend a finished run
    """
    from village import simulate
    from village.dbcheck import RunDBError
    from village.recorder import RecordingError, RunLockedError

    if hours is not None and steps is not None:
        fail("--hours and --steps: give one of them, not both")
    try:
        model, n = simulate.resume(run_db, steps=steps, hours=hours,
                                   overrides=_stack_options(llm_spec, no_cache, cache_path,
                                                            threads, llm_timeout))
    except simulate.RunFailedError as exc:
        fail(str(exc), code=1)
    except RecordingError as exc:
        fail(str(exc), code=1)
    except (RunDBError, RunLockedError, ScenarioError, ValueError, ModelError) as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        fail(f"{run_db}: cannot write the run database ({' '.join(str(exc).split())})")
    if not quiet:
        console.print(f"Resuming [bold]{run_db}[/bold] at step {model.steps} "
                      f"({model.now:%a %H:%M:%S}): {n} more steps, model {model.llm.name}")
    _drive(model, n, quiet)


@main.command()
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--at", "at", type=int, required=True,
              help="The step to branch after (-1: the last committed step).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The new run database.")
@click.option("--whisper", "whispers", multiple=True, metavar="'AGENT: text'",
              help="A memory the agent gets at the next step, as an inner voice (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="'AGENT.FIELD=VALUE'",
              help="Change a resident from then on: age, traits, background, currently, "
                   "routine, wake, sleep, vision_radius, attention_bandwidth (repeatable).")
@_stack_flags
def fork(run_db: Path, at: int, out: Path, whispers: tuple[str, ...], sets: tuple[str, ...],
         steps: int | None, hours: float | None, llm_spec: str | None, llm_timeout: float | None,
         no_cache: bool, cache_path: Path | None, threads: int | None, quiet: bool) -> None:
    """Branch a run after a step into a new database and continue it there: a
    counterfactual. Without changes the fork continues exactly like the original.

    \b
    Examples:
        village fork replays/demo.db --at 720 --out replays/demo-rumour.db \\
            --whisper "Mei Lin: Tom Moreno said the party is cancelled"
        village fork replays/demo.db --at 720 --out replays/demo-shy.db \\
            --set "Ayesha Khan.traits=['shy', 'quiet']" --steps 360
    """
    from village import simulate
    from village.dbcheck import RunDBError
    from village.fork import ForkError, fork as do_fork, parse_set, parse_whisper
    from village.recorder import RecordingError, RunLockedError

    if hours is not None and steps is not None:
        fail("--hours and --steps: give one of them, not both")
    try:
        changes = [*(parse_whisper(w) for w in whispers), *(parse_set(s) for s in sets)]
        model, n = do_fork(run_db, at=at, out=out, changes=changes, steps=steps, hours=hours,
                           overrides=_stack_options(llm_spec, no_cache, cache_path, threads,
                                                    llm_timeout))
    except simulate.RunFailedError as exc:
        fail(str(exc), code=1)
    except RecordingError as exc:
        fail(str(exc), code=1)
    except (ForkError, RunDBError, RunLockedError, ScenarioError, ValueError, ModelError) as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        fail(f"{out}: cannot write the run database ({' '.join(str(exc).split())})")
    if not quiet:
        console.print(f"Forked [bold]{run_db}[/bold] after step {model.steps} "
                      f"({model.now:%a %H:%M:%S}) into [bold]{out}[/bold]: {n} more steps"
                      + (f", {len(changes)} change(s)" if changes else ""))
    _drive(model, n, quiet)


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
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("agent")
@click.argument("question")
@click.option("--at", "at_step", type=click.IntRange(min=0), default=None,
              help="Answer from the memories as of this step (default: the last).")
@click.option("--llm", "llm_spec", default=None,
              help="Model backend (default: the one the run used).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Memories retrieved for the answer.")
def interview(run_db: Path, agent: str, question: str, at_step: int | None,
              llm_spec: str | None, k: int) -> None:
    """Ask AGENT of a recorded run a QUESTION; it answers in character from its memories.

    The answer is stored in the run's `interviews` table; what the run recorded is not
    changed.

    \b
    Example:
        village interview replays/demo.db "Tom Moreno" "Are you planning anything this week?" --at 300
    """
    from village.interview import InterviewError
    from village.interview import interview as ask

    try:
        ans = ask(run_db, agent, question, at=at_step, llm_spec=llm_spec, k=k)
    except (InterviewError, ValueError, ModelError) as exc:
        fail(str(exc))
    out = Console()
    out.print(f"[bold]{ans.agent}[/bold] (step {ans.step}): {ans.answer}", highlight=False)
    if ans.fallback:
        console.print("[yellow]note:[/yellow] the model gave no valid answer; a recorded fallback was used")


@main.command()
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--at", "at", default=None, metavar="STEP|TIME",
              help="Start at (or snapshot) a step, or a game time: 17:00, 'day2 17:00', "
                   "2023-02-14T17:00, -1 for the last step.")
@click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Render that one frame to a PNG, headless, and exit (default --at: the last step).")
@click.option("--terminal", is_flag=True, help="Replay in the terminal (Textual), e.g. over SSH.")
@click.option("--follow", is_flag=True,
              help="Stay on the newest step of a run still being written (also: End or L).")
@click.option("--play", is_flag=True, help="Start playing at once.")
@click.option("--speed", type=click.Choice(["1", "2", "4", "8", "16", "32", "64"]), default="1",
              show_default=True, help="Playback speed (1× = 2 steps per second).")
@click.option("--agent", default=None, help="Open this agent's side panel (name or id).")
@click.option("--tile", type=click.IntRange(min=4, max=96), default=None,
              help="Pixels per tile (snapshot default 24; window default: fit).")
def replay(run_db: Path, at: str | None, snapshot: Path | None, terminal: bool, follow: bool,
           play: bool, speed: str, agent: str | None, tile: int | None) -> None:
    """Watch a recorded run in a window (pygame) or the terminal, and jump to any moment.

    In the window press H for the keys: Space play/pause, arrows step and speed, click or
    drag the timeline to seek, click an agent for its plan and memories. A run still being
    written is followed as it grows.

    \b
    Examples:
        village replay replays/demo.db
        village replay replays/demo.db --at "day2 17:00" --snapshot party.png
        village replay replays/demo.db --terminal --follow
    """
    from village.replay import ReplayError, ReplayReader

    if snapshot is not None and terminal:
        fail("--snapshot and --terminal: give one of them, not both")
    try:
        reader = ReplayReader(run_db)
        if reader.last_step < reader.first_step and (snapshot is not None or not follow):
            fail(f"{run_db}: no steps recorded yet (use --follow to wait for them)")
        start = reader.resolve(at) if at is not None else None
        sel = None
        if agent is not None:
            sel = reader.agent(int(agent) if agent.isdigit() else agent).id
        if snapshot is not None:
            from village.viewer.snapshot import snapshot as save

            out = save(reader, reader.last_step if start is None else start, snapshot,
                       tile=tile or 24, agent=sel)
            click.echo(f"{out} (step {start if start is not None else reader.last_step}, "
                       f"{reader.clock(start if start is not None else reader.last_step)})")
            return
        if terminal:
            from village.viewer.terminal import ReplayApp

            ReplayApp(reader, start=start, follow=follow, speed=int(speed), agent=sel,
                      play=play).run()
            return
        from village.viewer.app import Viewer

        try:
            Viewer(reader, start=start, follow=follow, speed=int(speed), agent=sel, play=play,
                   tile=tile).run()
        except Exception as exc:  # noqa: BLE001 - pygame.error: no display and the like
            if type(exc).__name__ != "error":
                raise
            fail(f"cannot open a window ({exc}); try --terminal, or --snapshot out.png")
    except ReplayError as exc:
        fail(str(exc))


@main.command()
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--follow", is_flag=True,
              help="Attach to a run still being written: stay on its newest step (also: F).")
@click.option("--at", "at", default=None, metavar="STEP|TIME",
              help="Start at a step or a game time: 120, 17:00, 'day2 17:00', -1 (default: the last step).")
@click.option("--agent", default=None, help="Select this agent (name or id) at start.")
@click.option("--llm", "llm_spec", default=None,
              help="Model backend for interviews (default: the one the run used).")
def inspect(run_db: Path, follow: bool, at: str | None, agent: str | None, llm_spec: str | None) -> None:
    """Inspect a recorded run in the terminal: why each agent did what it did.

    Read-only (interviews asked from it are appended to the run's interviews table). Views:
    1 town, 2 agent (i identity, m memories, p plans, c conversations, r reflections),
    3 retrieval probe, 4 model calls, 5 interview; , and . step, g go to, [ and ] change
    agent, Enter opens, ? shows every key. See docs/inspector.md.

    \b
    Examples:
        village inspect replays/demo.db
        village inspect replays/demo.db --at "day1 09:00" --agent "Tom Moreno"
        village inspect replays/live.db --follow
    """
    from village.replay import ReplayError, ReplayReader

    try:
        reader = ReplayReader(run_db)
        if reader.last_step < reader.first_step and not follow:
            fail(f"{run_db}: no steps recorded yet (use --follow to wait for them)")
        start = reader.resolve(at) if at is not None else None
        sel = reader.agent(int(agent) if agent.isdigit() else agent).id if agent is not None else None
    except ReplayError as exc:
        fail(str(exc))
    from village.inspector import InspectorApp

    app = InspectorApp(reader, start=start, follow=follow, agent=sel, llm_spec=llm_spec)
    app.run()
    if app.error:
        fail(app.error)


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



@main.command()
@click.argument("run_db", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.md, report.html and the PNG figures (default: RUN-report/ next to RUN_DB).")
@click.option("--keywords-only", is_flag=True,
              help="Track facts by keywords only (no embedding similarity; no embedder is loaded).")
@click.option("--similarity", type=click.FloatRange(-1, 1), default=None,
              help="Cosine similarity to a fact's description that counts as a mention (default per embedder).")
@click.option("--interview", "do_interview", is_flag=True,
              help="First ask every agent about every fact (village interview), as the paper measured diffusion.")
@click.option("--interview-pairs", is_flag=True,
              help="Also ask every agent \"Do you know X?\" about every other (n·(n−1) model calls).")
def report(run_db: Path, out_dir: Path | None, keywords_only: bool, similarity: float | None,
           do_interview: bool, interview_pairs: bool) -> None:
    """Measure a recorded run and write a report: Markdown, HTML and PNG plots.

    Information diffusion of each seeded fact, relationship formation (network density),
    coordination (who came to the party among those who knew) and the model economy.

    \b
    Example:
        village report replays/valentines-20260101-120000.db --out reports/valentines
    """
    from village.report import run_interviews, write_report

    if not run_db.is_file():
        fail(f"{run_db}: no such run database")
    try:
        if do_interview or interview_pairs:
            n = run_interviews(run_db, pairs=interview_pairs)
            console.print(f"asked {n} interview questions")
        files = write_report(run_db, out_dir, method="keywords" if keywords_only else "auto",
                             threshold=similarity)
    except (ValueError, KeyError, FileNotFoundError, sqlite3.DatabaseError) as exc:
        fail(f"{run_db}: {exc}")
    except ModelError as exc:
        fail(f"{run_db}: interview: {exc}", code=1)
    click.echo(f"{files.markdown}\n{files.html}")
    for f in files.figures:
        click.echo(str(f))


@main.command()
@click.argument("run_dbs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--markdown", "as_markdown", is_flag=True, help="Print a Markdown table instead.")
@click.option("--keywords-only", is_flag=True, help="Track facts by keywords only (no embedder is loaded).")
def compare(run_dbs: tuple[Path, ...], as_markdown: bool, keywords_only: bool) -> None:
    """Compare runs side by side: diffusion, density, attendance, model economy.

    \b
    Example:
        village compare replays/full.db replays/no-reflection.db replays/no-planning.db
    """
    from rich.table import Table

    from village.report import compare as compare_runs
    from village.report import compare_markdown

    for p in run_dbs:
        if not p.is_file():
            fail(f"{p}: no such run database")
    try:
        headers, rows = compare_runs(run_dbs, method="keywords" if keywords_only else "auto")
    except (ValueError, KeyError, sqlite3.DatabaseError) as exc:
        fail(str(exc))
    if as_markdown:
        click.echo(compare_markdown(headers, rows), nl=False)
        return
    t = Table(show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*r)
    Console().print(t)


@main.command("import-smallville")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Scenario file to write (.toml).")
@click.option("--map", "base", default="valentines", show_default=True,
              help="The scenario whose town map the residents move into.")
@click.option("--history", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The released code's agent_history_init CSV (Name,Whisper): seeded memories.")
@click.option("--name", "name", default=None, help="Scenario name (default: the --out file's stem).")
@click.option("--no-facts", is_flag=True, help="Do not copy the map scenario's [[facts]].")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def import_smallville(directory: Path, out: Path, base: str, history: Path | None, name: str | None,
                      no_facts: bool, force: bool) -> None:
    """Convert the persona folders of the paper's released code into a Village scenario.

    DIRECTORY holds personas/<Name>/bootstrap_memory/scratch.json (or is the personas
    folder, or one persona). Everything that could not be mapped is listed.

    \b
    Example:
        village import-smallville generative_agents/environment/frontend_server/storage/base_the_ville_n25 --out scenarios/smallville.toml
    """
    from village.smallville import SmallvilleError
    from village.smallville import import_smallville as convert

    if out.exists() and not force:
        fail(f"{out}: already exists (use --force to overwrite)")
    try:
        res = convert(directory, base=base, name=name or out.stem, history=history,
                      keep_facts=not no_facts)
    except SmallvilleError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(res.toml, encoding="utf-8")
    c = Console()
    c.print(f"Imported {len(res.residents)} residents onto the '{base}' map → [bold]{out}[/bold]")
    if res.unmapped:
        c.print("[yellow]Could not be mapped:[/yellow]")
        for line in res.unmapped:
            c.print(f"  - {line}", highlight=False, soft_wrap=True)
    if res.changed:
        c.print("Mapped with changes:")
        for line in res.changed:
            c.print(f"  - {line}", highlight=False, soft_wrap=True)


@main.command()
@click.option("--quick", is_flag=True, help="The short suite (about 5 minutes on 2 cores).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures, targets and ratios to this JSON file.")
@click.option("--only", "only", multiple=True,
              type=click.Choice(["retrieval", "engine", "recording", "economy", "cache"]),
              help="Run only these sections (repeatable; default all).")
@click.option("--economy-db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the model-economy figures from this recorded run (bundled model) "
                   "instead of running one.")
def bench(quick: bool, json_out: Path | None, only: tuple[str, ...], economy_db: Path | None) -> None:
    """Measure retrieval, the engine, recording, model economy and the cache against
    their targets, each with a baseline measured in the same process (BENCHMARKS.md).

    \b
    Example:
        village bench --quick --json bench.json
    """
    from village.bench.suite import SECTIONS, print_table, run_suite, to_json

    if economy_db is not None and not economy_db.is_file():
        fail(f"{economy_db}: no such run database")
    if json_out is not None and not json_out.parent.is_dir():
        fail(f"{json_out}: folder {json_out.parent} does not exist")
    result = run_suite(quick, sections=only or SECTIONS, econ_db=economy_db,
                       log=lambda m: console.print(f"[dim]{m}[/dim]", highlight=False))
    print_table(result, Console(width=max(Console().width, 160)))
    if json_out is not None:
        json_out.write_text(to_json(result), encoding="utf-8")
        click.echo(f"wrote {json_out}")



@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--address", default=None, metavar="ADDR",
              help="An existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance.")
@click.option("--parallel", type=int, default=None, metavar="N",
              help="Runs at once on the local instance or pool (default 2).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: the file's 'out', else replays/sweeps/NAME).")
@click.option("--executor", type=click.Choice(["ray", "pool", "serial"]), default=None,
              help="Where runs execute (default: ray if installed, else a local process pool).")
def sweep(sweep_file: Path, address: str | None, parallel: int | None, out: Path | None,
          executor: str | None) -> None:
    """Run a grid of scenarios x seeds x ablations x models in parallel (Ray), each run to
    its own database, and compare them in one table (compare.md, compare.csv, runs.csv).

    \b
    Example:
        village sweep examples/sweep.toml --parallel 2
    """
    from rich.markup import escape

    from village.sweep import SweepError, load_sweep, run_sweep

    try:
        sw = load_sweep(sweep_file, out=out)
    except SweepError as exc:
        fail(escape(str(exc)))
    console.print(f"sweep {sw.name}: {len(sw.runs)} runs -> {sw.out}", highlight=False)

    def progress(i: int, n: int, o) -> None:  # noqa: ANN001
        colour = {"finished": "green", "skipped": "dim", "failed": "red"}[o.status]
        extra = f" after {o.attempts} attempts: {o.error}" if o.status == "failed" else ""
        console.print(f"\\[{i}/{n}] [{colour}]{o.status}[/{colour}] {escape(o.label)} "
                      f"({o.wall_s:.1f} s, {o.calls} calls){escape(extra)}", highlight=False,
                      soft_wrap=True)

    try:
        res = run_sweep(sw, executor=executor, address=address, parallel=parallel,
                        progress=progress)
    except SweepError as exc:
        fail(escape(str(exc)))
    if res.rows:
        from rich.table import Table

        t = Table(show_lines=False)
        for h in res.headers:
            t.add_column(h, overflow="fold")
        for r in res.rows:
            t.add_row(*r)
        Console(width=max(Console().width, 160)).print(t)
        click.echo(f"{res.out / 'compare.md'}\n{res.out / 'compare.csv'}")
    click.echo(f"{res.out / 'runs.csv'}")
    click.echo(f"{len(res.finished)} of {len(res.outcomes)} runs finished in {res.wall_s:.1f} s"
               + (f"; failed: {', '.join(o.label for o in res.failed)}" if res.failed else ""))
    if res.failed:
        sys.exit(1)

if __name__ == "__main__":
    main()
