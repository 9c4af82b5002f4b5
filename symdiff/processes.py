"""Fork safety: symdiff's locks (and Numba's compiler lock) are taken around ``os.fork``
and released on both sides, so a child never inherits a lock that a compile thread holds;
in the child, compiled functions restart the background compiles that did not come along.
"""

from __future__ import annotations

import os
import threading
import weakref

from numba.core.compiler_lock import global_compiler_lock

from codegen import load

from . import blas_threads, chunked, loading, walk
from .ir import Expr

# Compiled functions of this process, whose background compiles a forked child restarts
# (symdiff.api adds each one).
INSTANCES: weakref.WeakSet = weakref.WeakSet()
# Unpickling a compiled function in this process (one object per token: symdiff.api).
UNPICKLING = threading.Lock()


def _before_fork() -> None:
    # Waits until no compile step runs; the order is the one compile threads take.
    chunked._BUILDING.acquire()
    UNPICKLING.acquire()
    loading.PREPARING.acquire()
    load._loading.acquire()
    global_compiler_lock.acquire()
    Expr._interning.acquire()
    walk._RECENT_LOCK.acquire()
    blas_threads._lock.acquire()


def _after_fork_in_parent() -> None:
    blas_threads._lock.release()
    walk._RECENT_LOCK.release()
    Expr._interning.release()
    global_compiler_lock.release()
    load._loading.release()
    loading.PREPARING.release()
    UNPICKLING.release()
    chunked._BUILDING.release()


def _after_fork_in_child() -> None:
    _after_fork_in_parent()
    for compiled in list(INSTANCES):
        compiled._after_fork()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
