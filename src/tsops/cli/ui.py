"""What the CLI shows a person: consoles, tables, progress and where logs go.

- :data:`console` (stdout) and :data:`err_console` (stderr, progress and messages). When the output is piped or
  logged (not a terminal) and ``$COLUMNS`` is unset, they are :data:`PIPE_WIDTH` wide instead of rich's 80,
  and :func:`table` folds long cells instead of cutting them: ids are never truncated.
- :func:`setup_logging`: tsops' own warnings go to the terminal; every log record (tsops' INFO, MLflow, Ray,
  Optuna, Spark's Python side, ...) goes to a log file, ``<project>/.tsops/logs/tsops.log`` (or
  ``~/.cache/tsops/tsops.log`` outside a project), whose path is printed once, the first time a record
  lands only there. ``-v`` shows INFO records of every library on the terminal, ``-vv`` DEBUG. It also turns
  off MLflow's artifact progress bars and the Ray/Optuna/TensorBoard chatter (:func:`quiet_third_party`).
- :func:`jvm_output_to_log`: while a JVM starts (Spark), file descriptor 2 points at the log file, so
  log4j's warnings land there (the JVM keeps that stderr for its life).
- :func:`progress`: one rich progress display (what is being done, a bar, done/total, elapsed, estimate);
  :func:`LogTap` turns log records of a long computation (training steps, registered tables) into
  progress updates without the computation knowing about the display.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

#: Width of the consoles when the output is not a terminal and $COLUMNS is unset.
PIPE_WIDTH = 200
LOG_FILE = Path(".tsops") / "logs" / "tsops.log"
#: Libraries whose INFO chatter belongs in the log file, not between tsops' tables.
THIRD_PARTY = ("mlflow", "alembic", "optuna", "ray", "py4j", "pyspark", "urllib3", "httpx", "numba",
               "matplotlib", "fsspec", "statsforecast", "filelock", "asyncio", "uvicorn", "confluent_kafka")
# environment switches honoured by the libraries themselves (set before they are imported)
_QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" tqdm bars
    "MLFLOW_CONFIGURE_LOGGING": "false",  # mlflow's loggers propagate to ours instead of printing
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

def _make_console(stderr: bool = False) -> Console:
    stream_tty = (sys.stderr if stderr else sys.stdout).isatty()
    width = None if stream_tty or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, width=width)


console = _make_console()
err_console = _make_console(stderr=True)


def table(title: str | None = None, columns: Sequence[str] = (), *, numeric: Sequence[str] = ()) -> Table:
    """A rich table whose cells wrap (fold) instead of being cut with an ellipsis; ``numeric`` columns are
    right-aligned and never wrapped."""
    t = Table(title=title)
    for c in columns:
        if c in numeric:
            t.add_column(c, justify="right", no_wrap=True)
        else:
            t.add_column(c, overflow="fold", no_wrap=False)
    return t


# ------------------------------------------------------------------------------------------- logging
class _ConsoleFilter(logging.Filter):
    """Terminal: tsops' own records at the chosen level; other libraries only with -v (or at ERROR)."""

    def __init__(self, verbose: int) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose > 0:
            return True
        own = record.name == "tsops" or record.name.startswith("tsops.") or record.name == "__main__"
        return own or record.levelno >= logging.ERROR


class _FileHandler(logging.FileHandler):
    """The log file, opened on the first record; says once on stderr where the routed records went."""

    def __init__(self, path: Path, verbose: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, encoding="utf-8", delay=True)
        self.path, self.verbose, self.announced = path, verbose, False
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if not self.announced and not self.verbose and not _ConsoleFilter(0).filter(record):
            self.announced = True
            err_console.print(f"[dim]library logs: {self.path} (-v shows them here)[/dim]")


#: Loggers too detailed even for the file at INFO.
_WARNING_ONLY = ("fontTools", "PIL", "matplotlib.font_manager")

_state: dict[str, object] = {}


def log_file_for(project_dir: Path | None) -> Path:
    """``<project>/.tsops/logs/tsops.log`` for the project at/above ``project_dir`` (or the cwd), else
    ``~/.cache/tsops/tsops.log``."""
    start = Path(project_dir) if project_dir is not None else Path.cwd()
    if start.is_dir():
        for d in [start.resolve(), *start.resolve().parents]:
            if (d / "tsops.yaml").is_file():
                return d / LOG_FILE
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tsops" / "tsops.log"


def setup_logging(verbose: int = 0, project_dir: Path | None = None, path: Path | None = None) -> Path:
    """Route logs (see the module docstring); idempotent per process. Returns the log file's path
    (``path``, else the one of the project at/above ``project_dir``)."""
    for k, v in _QUIET_ENV.items():
        os.environ.setdefault(k, v)
    path = Path(path) if path is not None else log_file_for(project_dir)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tsops", False):
            root.removeHandler(h)
            h.close()
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    term = RichHandler(console=err_console, show_path=verbose > 1, rich_tracebacks=False)
    term.setLevel(level)
    term.addFilter(_ConsoleFilter(verbose))
    filed = _FileHandler(path, verbose)
    filed.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    for h in (term, filed):
        h._tsops = True  # type: ignore[attr-defined]
        root.addHandler(h)
    # INFO of tsops and of the libraries above reaches the file; any other logger (torch's INFO chatter, ...)
    # only from WARNING on, unless -v
    root.setLevel(logging.WARNING if verbose == 0 else level)
    for name in ("tsops", "__main__", *THIRD_PARTY):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    for name in _WARNING_ONLY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.captureWarnings(not verbose)  # library warnings.warn(...) to the file too
    _state.update(verbose=verbose, path=path)
    _install_import_hook()
    quiet_third_party()
    return path


def log_to(path: Path) -> Path:
    """Send the log file to ``path`` from now on (same verbosity), e.g. once a command knows its project."""
    return setup_logging(int(_state.get("verbose", 0) or 0), path=path)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs :func:`quiet_third_party` right after MLflow, Optuna or Ray is imported (they install their own
    stderr handlers on import, wherever in tsops that import happens)."""

    WATCH = ("mlflow", "optuna", "ray")

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.WATCH or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return None
        run = loader.exec_module

        def exec_module(module, run=run):
            run(module)
            quiet_third_party()

        loader.exec_module = exec_module
        return spec


def _install_import_hook() -> None:
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


class _LinesToLog:
    """A text stream that logs each written line (MLflow's ``eprint`` messages: "Successfully registered
    model ...", "Created version ...")."""

    def __init__(self, logger: str) -> None:
        self.log, self.buf = logging.getLogger(logger), ""

    def __call__(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.strip():
                self.log.info("%s", line)
        return len(text)


def quiet_third_party() -> None:
    """Make already-imported libraries that print through their own handlers log through ours instead:
    Optuna (its own stderr handler), Ray (its ``ray`` logger with a handler and no propagation)."""
    verbose = int(_state.get("verbose", 0) or 0)
    level = logging.DEBUG if verbose > 1 else logging.INFO
    if "mlflow.utils.logging_utils" in sys.modules:
        stream = sys.modules["mlflow.utils.logging_utils"].MLFLOW_LOGGING_STREAM
        if verbose:
            stream.__dict__.pop("write", None)
        elif not isinstance(stream.__dict__.get("write"), _LinesToLog):
            stream.write = _LinesToLog("mlflow.events")
        lg = logging.getLogger("mlflow")
        for h in list(lg.handlers):  # when MLflow was imported before our environment was set
            if not getattr(h, "_tsops", False):
                lg.removeHandler(h)
        lg.propagate = True
    if "optuna" in sys.modules:
        import optuna

        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(level)
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        lg = logging.getLogger(name)
        if name in sys.modules or lg.handlers:
            for h in list(lg.handlers):
                if not getattr(h, "_tsops", False):
                    lg.removeHandler(h)
            lg.propagate = True
            lg.setLevel(level)


@contextlib.contextmanager
def jvm_output_to_log() -> Iterator[Path | None]:
    """Point file descriptor 2 at the log file while a JVM (Spark) starts, unless -v: the JVM inherits it
    and keeps writing log4j's messages there. Python's own stderr (and rich) keep the terminal."""
    path = _state.get("path")
    if not isinstance(path, Path) or _state.get("verbose"):
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
    # rich and Python keep writing to the terminal through a duplicate of the original descriptor
    old_stderr = sys.stderr
    term = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None) or "utf-8")
    sys.stderr = term
    err_console.file = term
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = old_stderr
        err_console.file = None  # type: ignore[assignment] - back to following sys.stderr
        term.close()


# ------------------------------------------------------------------------------------------- progress
def progress(transient: bool = False) -> Progress:
    """The CLI's progress display on stderr: spinner, what is being done, bar, done/total, elapsed and the
    estimated time left. Use as ``with progress() as p: task = p.add_task("training lstm", total=n)``."""
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err_console, transient=transient,
    )


@contextlib.contextmanager
def step(description: str, total: float | None = None, info: str = "") -> Iterator[tuple[Progress, TaskID]]:
    """One progress task for a block; completes the bar at the end. When the block fails, the bar goes away
    so the error stays the one line it is."""
    with progress() as p:
        task = p.add_task(description, total=total, info=info)
        try:
            yield p, task
        except BaseException:
            p.remove_task(task)
            raise
        t = p.tasks[0]
        p.update(task, total=t.total if t.total is not None else 1, completed=t.total or 1)


class LogTap(logging.Handler):
    """Feed log records of ``logger`` whose message matches ``pattern`` to ``on_match(record, match)`` for
    the duration of a ``with`` block (the logger is lowered to ``level`` meanwhile; the records still reach
    the other handlers, which filter them by their own level)."""

    def __init__(self, logger: str, pattern: str, on_match: Callable[[logging.LogRecord, re.Match], None],
                 level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.logger, self.pattern, self.on_match, self.tap_level = logging.getLogger(logger), re.compile(pattern), \
            on_match, level
        self._old_level = self.logger.level

    def emit(self, record: logging.LogRecord) -> None:
        m = self.pattern.search(record.getMessage())
        if m:
            self.on_match(record, m)

    def __enter__(self) -> LogTap:
        self._old_level = self.logger.level
        if self.logger.getEffectiveLevel() > self.tap_level:
            self.logger.setLevel(self.tap_level)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._old_level)
