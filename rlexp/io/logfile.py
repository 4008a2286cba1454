"""A run's log file (Hydra's <run_dir>/train.log) on a disk that fails."""

from __future__ import annotations

import logging
import sys

from rlexp.errors import RunFailure


def stop_on_write_errors(logger: logging.Logger) -> None:
    """A file handler of `logger` that cannot write (a full disk, a file-size limit) stops the run: the logging call
    that met the error raises a RunFailure naming the file, once, and the handler is removed (the console still
    gets every line). By default logging prints a `--- Logging error ---` block with a traceback for each line it
    cannot write, and the run goes on with a log that has holes."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = _Failing(logger, handler)  # type: ignore[method-assign]


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
