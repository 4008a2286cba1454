"""A run's log file (Hydra's <run_dir>/train.log) on a disk that fails."""

from __future__ import annotations

import logging
import sys

from rlexp.errors import OutputLost, RunFailure


def stop_on_write_errors(logger: logging.Logger) -> None:
    """A file handler of `logger` that cannot write (a full disk, a file-size limit) stops the run: the logging call
    that met the error raises a RunFailure naming the file, once, and the handler is removed (the console still
    gets every line). By default logging prints a `--- Logging error ---` block with a traceback for each line it
    cannot write, and the run goes on with a log that has holes."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = _Failing(logger, handler)  # type: ignore[method-assign]


class ConsoleHandler(logging.StreamHandler):
    """The console of `rlexp train` (conf/hydra/job_logging/rlexp.yaml, hydra_logging/rlexp.yaml). stdout that
    cannot be written (rlexp/commands/streams.py's OutputLost: closed, a full disk; or a pipe whose reader has gone)
    ends the console log with one warning on stderr, and the run goes on: its log file keeps every line (the console
    is a view of it). By default logging prints a `--- Logging error ---` block for every line instead."""

    lost = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.lost:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, (OutputLost, BrokenPipeError)):
            super().handleError(record)   # a formatting bug: logging's own report
            return
        self.lost = True
        why = error if isinstance(error, OutputLost) else "could not write to stdout: its reader has gone (a pipe)"
        print(f"rlexp train: warning: {why}; the console log stops here, the run goes on (train.log has every "
              f"line)", file=sys.stderr)


class _Failing:
    """The handler's `handleError`, called by its `emit` while the write's error is being handled."""

    def __init__(self, logger: logging.Logger, handler: logging.FileHandler) -> None:
        self.logger, self.handler = logger, handler

    def __call__(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            logging.Handler.handleError(self.handler, record)   # a formatting bug: logging's own report
            return
        self.logger.removeHandler(self.handler)
        try:
            self.handler.close()
        except OSError:   # (its buffer cannot be flushed either)
            pass
        raise RunFailure(f"could not write the log {self.handler.baseFilename}: {error.strerror or error}")
