"""captured_log: keep what loggers say during a block, for checking it (and not printing it).

Notebooks and tests that provoke a log line on purpose (a warning they assert,
a deliberate 404) use it so the line is checked rather than shown as stderr
noise::

    with captured_log("kernelstate.reuse") as reuse_log:
        ...
    assert any("not caching" in m for m in reuse_log.messages)
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LogCapture(logging.Handler):
    """The records a logger (and its children) emitted while captured."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        """The formatted messages, in the order they were logged."""
        return [record.getMessage() for record in self.records]


@contextmanager
def captured_log(*names: str, level: int = logging.INFO) -> Iterator[LogCapture]:
    """Capture the records of the loggers ``names`` at ``level`` or above during the block.

    While the block runs each logger's level is ``level`` and its records are
    not passed on to its parents' handlers (so nothing reaches stderr);
    both are restored afterwards.
    """
    if not names:
        raise ValueError("captured_log needs at least one logger name, e.g. captured_log('kernelstate')")
    capture = LogCapture(level)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(capture)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield capture
    finally:
        for logger, (old_level, old_propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(capture)
            logger.setLevel(old_level)
            logger.propagate = old_propagate
