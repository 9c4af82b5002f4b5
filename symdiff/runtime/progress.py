"""Progress of slow compiles, through Python's logging (logger ``"symdiff"``).

A compile that takes more than ``SLOW_S`` seconds logs at INFO once that time has
passed (what it compiles and how large it is) and again when it is done, so nobody waits
in silence.  Nothing shows unless the logger has a handler at INFO: ``sd.show_progress()``
adds one on stderr (the long examples call it).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

LOG = logging.getLogger("symdiff")
SLOW_S = 1.0


@contextlib.contextmanager
def reporting(what: str, size: str):
    """Log the compile of ``what`` (of ``size``) if it takes more than SLOW_S seconds."""
    start = time.perf_counter()
    timer = threading.Timer(SLOW_S, LOG.info, args=(
        "compiling %s (%s; Numba and LLVM at work)...", what, size))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        elapsed = time.perf_counter() - start
        if elapsed > SLOW_S:
            LOG.info("compiled %s in %.1f s", what, elapsed)


def show_progress(stream=None) -> logging.Handler:
    """Print symdiff's progress lines (slow compiles) on ``stream`` (default stderr)."""
    for handler in LOG.handlers:
        if getattr(handler, "_symdiff_progress", False):
            return handler
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("symdiff: %(message)s"))
    handler._symdiff_progress = True
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    return handler
