"""Readable progress for terminal commands: one line per stage with its elapsed time and, where the stage has
steps (LoRA steps, anchors, segments, frames), its own count; a summary at the end.

Assets report their steps through `step_progress(context, unit)`, which logs them (the UI's run log) and
forwards them to the terminal display of the command running in this process, if any (`StageDisplay`).
Dagster's own event log stays in the instance and the UI; commands print it only with `--verbose`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

INNER_UNIT = "denoising steps"
"""Steps inside a stage's own steps (each anchor or segment restarts them): shown on a line of their own."""
_listener: Callable[[int, int, str], None] | None = None


def step_progress(context, unit: str, every: int = 1) -> Callable[[int, int], None]:
    """A (done, total) callback for a stage's steps: logged every `every` steps and at the last (never with
    `every=0`: denoising steps, which restart per anchor or segment), shown live in the terminal."""

    def report(done: int, total: int) -> None:
        if every and (done % every == 0 or done == total):
            context.log.info(f"{unit} {done}/{total}")
        if _listener is not None:
            _listener(done, total, unit)

    return report


def quiet_libraries() -> None:
    """Only errors from Python warnings, diffusers and transformers (their log stays available with --verbose)."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.simplefilter("ignore")
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


class StageDisplay:
    """rich progress lines, one per stage; on a terminal they update live, elsewhere each prints when done."""

    def __init__(self, console: Console | None = None, verbose: bool = False):
        self.console = console or Console(highlight=False)
        self.verbose = verbose
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description:<44}"), BarColumn(bar_width=24),
                                 MofNCompleteColumn(), TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                                 console=self.console, disable=not self.console.is_terminal)
        self.summary: list[tuple[str, str, float]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[str], None]]:
        """Show `name` running; yields `finish(outcome)` to call with 'ran' or 'up to date'."""
        global _listener
        task = self.progress.add_task(escape(name), total=None, unit="")
        inner: list[int] = []  # denoising steps of the current anchor or segment: a second line below
        started = time.perf_counter()
        outcome = {"text": "failed"}

        def on_step(done: int, total: int, unit: str) -> None:
            if unit != INNER_UNIT:
                self.progress.update(task, completed=done, total=total, unit=unit)
                return
            if not inner:
                inner.append(self.progress.add_task("", total=total, unit=unit))
            self.progress.update(inner[0], completed=done, total=total)

        _listener = on_step
        try:
            yield lambda text: outcome.update(text=text)
        finally:
            _listener = None
            for sub in inner:
                self.progress.remove_task(sub)
            seconds = time.perf_counter() - started
            self.progress.update(task, description=escape(f"{name}: {outcome['text']}"), total=1, completed=1)
            self.summary.append((name, outcome["text"], seconds))
            if not self.console.is_terminal:
                self.console.print(f"{name}: {outcome['text']} ({seconds:.1f} s)", markup=False, highlight=False)

    def __enter__(self) -> StageDisplay:
        if not self.verbose:  # the libraries' own warnings and bars would scatter the stage lines
            quiet_libraries()
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def print_summary(self) -> None:
        ran = [s for s in self.summary if s[1] == "ran"]
        total = sum(s[2] for s in self.summary)
        self.console.print(f"{len(ran)} stage(s) ran, {len(self.summary) - len(ran)} up to date, {total:.0f} s",
                           markup=False, highlight=False)
