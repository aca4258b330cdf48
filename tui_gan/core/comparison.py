"""Another run, read from its files, to draw beside the one being watched (``--compare``,
and the app's run picker): its metric history and its batch size (for aligning the two by
images seen). Reads files only, never a service's socket, so it works on any run, running
or not, and never waits. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig, tomllib  # the standard library's, or tomli before Python 3.11
from .errors import UserError
from .history import HistoryRow
from .metrics_csv import MetricsCsvError, MetricsCsvReader, best_swd, history_or_empty
from .rundir import RunDir


class ComparedRun:
    """A run's metrics.csv, followed as it grows (``refresh``), with the batch size from its
    config.toml. ``open`` checks the folder and reads the history once."""

    def __init__(self, run: RunDir, batch_size: int) -> None:
        self.run = run
        self.batch_size = batch_size
        self._reader = MetricsCsvReader(run.metrics)

    @property
    def name(self) -> str:
        return self.run.root.name

    @property
    def rows(self) -> list[HistoryRow]:
        """The rows read so far (a copy: a refresh in another thread does not change it)."""
        return list(self._reader.rows)

    @classmethod
    def open(cls, spec: str | Path, flag: str = "--compare") -> ComparedRun:
        """The run at ``spec`` with its history read; UserError (naming ``flag``) when it is
        not a run directory with a readable metrics.csv."""
        run = RunDir(Path(spec).expanduser().resolve())
        if not run.root.exists():
            raise UserError(f"{flag} {spec}: no such run directory; see 'tui-gan ls'")
        if not run.root.is_dir() or not run.is_run():
            raise UserError(f"{flag} {spec}: not a run directory (no config.toml or service.json); see 'tui-gan ls'")
        if not run.metrics.is_file():
            raise UserError(f"{flag} {spec}: the run has no metrics.csv yet (it has not trained a step); "
                            "compare with a run that has")
        compared = cls(run, read_batch_size(run, flag, spec))
        try:
            compared.refresh()
        except MetricsCsvError as exc:
            raise UserError(f"{flag} {spec}: {exc}") from None
        return compared

    def refresh(self) -> bool:
        """Read the rows appended since the last look; True when there are new ones (or the
        file was rewritten, as a resume does). Cheap when nothing changed: one stat."""
        return self._reader.refresh()


def read_batch_size(run: RunDir, flag: str, spec: str | Path) -> int:
    """The batch size in a run's config.toml (the default where it names none: config.toml
    holds the resolved settings, so only a hand-written one lacks it)."""
    try:
        data = tomllib.loads(run.config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return TrainConfig.batch_size  # a run whose service record came first: the default
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{flag} {spec}: its config.toml cannot be read ({exc})") from None
    value = data.get("batch_size", TrainConfig.batch_size)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{flag} {spec}: its config.toml has batch_size = {value!r}, not a positive integer")
    return value


@dataclass(frozen=True)
class RunSummary:
    """One run as the run picker lists it (from its files: see commands/runstate.py, run_summaries)."""

    root: Path
    state: str
    step: int | None
    best_swd: float | None

    @property
    def name(self) -> str:
        return self.root.name


def summarise_run(run: RunDir, state: str) -> RunSummary:
    """The run's last logged step and best SWD from its metrics.csv (None where it has none)."""
    history = history_or_empty(run.metrics)
    return RunSummary(run.root, state, history[-1].step if history else None, best_swd(history))
