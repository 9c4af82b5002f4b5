"""Fork safety: symdiff's locks (and Numba's compiler lock) are taken around ``os.fork``
and released on both sides, so a child never inherits a lock that a compile thread holds;
in the child, the loaders of compiled functions restart the background compiles that did
not come along.
"""

from __future__ import annotations

import os
import threading

from numba.core.compiler_lock import global_compiler_lock

from codegen import load
from symdiff.ir import walk
from symdiff.ir.nodes import INTERNING
from symdiff.runtime import blas_threads, chunked, loading, native

# Unpickling a compiled function in this process (one object per content:
# symdiff.runtime.compiled).
UNPICKLING = threading.Lock()

# In the order compile threads take them.
_LOCKS = (chunked.BUILDING, UNPICKLING, loading.PREPARING, native.LOCK, load.LOADING,
          global_compiler_lock, INTERNING, walk.RECENT_LOCK, blas_threads.LOCK)


def _before_fork() -> None:
    # Waits until no compile step runs.
    for lock in _LOCKS:
        lock.acquire()


def _after_fork_in_parent() -> None:
    for lock in reversed(_LOCKS):
        lock.release()


def _after_fork_in_child() -> None:
    _after_fork_in_parent()
    for loader in list(loading.LOADERS):
        loader.after_fork()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
