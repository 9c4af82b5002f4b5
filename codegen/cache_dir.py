"""Which directory holds the compile cache, and whether it can be trusted.

The rules are pip's and ssh's: symdiff keeps code only in a directory of its own that no
other user can change, whole path included.

- The directory is ``$SYMDIFF_CACHE_DIR``, else ``$XDG_CACHE_HOME/symdiff``, else
  ``~/.cache/symdiff``.  symdiff marks a directory it creates with a ``CACHEDIR.TAG``
  (the cache directory tag standard); an existing directory without that tag is never
  changed or cleared: the cache goes into a subdirectory ``symdiff-cache`` of its own.
- The directory must be a real directory (not a symlink) of the user's, created 0700.
  Every directory above it must belong to root or the user and be writable by no other
  user (a world-writable one only with the sticky bit, as /tmp; a group-writable one
  only where the group is the user's own private group): otherwise someone could swap
  the directory between symdiff's checks and Numba's reads.
- When it fails, a private temporary directory (removed at exit) is used, with a
  warning; ``SYMDIFF_CACHE_SIZE=0`` turns the disk cache off.
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import shutil
import stat
import tempfile
import warnings

DEFAULT_SIZE = 1 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
NUMBA_DIR = "__pycache__"  # Numba's files of a module, beside it (codegen.numba_cache)
TAG = "CACHEDIR.TAG"
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by symdiff.\n"
            "# For information about cache directory tags see https://bford.info/cachedir/\n")
OWN_SUBDIRECTORY = "symdiff-cache"
_fallback: tuple[int, str] | None = None  # (creating pid, private temporary directory)
_warned: set[str] = set()


class CacheWarning(UserWarning):
    """The compile cache could not be used as configured (symdiff goes on without it)."""


def warn_once(key: str, message: str) -> None:
    """Warn about a cache problem once per process and kind."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, CacheWarning, stacklevel=4)


def configured_directory() -> str:
    """Where the cache is configured to live: $SYMDIFF_CACHE_DIR, else
    $XDG_CACHE_HOME/symdiff, else ~/.cache/symdiff (see ``own_directory``)."""
    configured = os.environ.get("SYMDIFF_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "symdiff")


def size_limit() -> int:
    """The cache's size bound in bytes, from $SYMDIFF_CACHE_SIZE ("500M", "2G", bytes)."""
    text = os.environ.get("SYMDIFF_CACHE_SIZE", "").strip().upper().removesuffix("B")
    if not text:
        return DEFAULT_SIZE
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)I?", text)
    if match is None:
        warn_once("size", f"SYMDIFF_CACHE_SIZE={text!r} is not a size such as 500M or 2G; "
                          "using 1G")
        return DEFAULT_SIZE
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def is_tagged(path: str) -> bool:
    """Whether symdiff created the directory ``path``: its tag is a regular file of the
    user's holding symdiff's text (another tool's cache tag is not symdiff's)."""
    try:
        handle = os.open(os.path.join(path, TAG), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    with os.fdopen(handle, "rb") as tag:
        info = os.fstat(tag.fileno())
        return (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
                and tag.read(len(TAG_TEXT) + 1) == TAG_TEXT.encode("ascii"))


def own_directory(configured: str) -> str:
    """The directory symdiff uses for ``configured``: itself if symdiff created it (or it
    does not exist yet), else its subdirectory of symdiff's own."""
    if os.path.islink(configured) or not os.path.lexists(configured):
        return configured  # a symlink is refused as it is; a missing one is created
    return configured if is_tagged(configured) else os.path.join(configured,
                                                                 OWN_SUBDIRECTORY)


def _group_is_private(gid: int) -> bool:
    """Whether a group is the user's own: its primary group, no other user's primary
    group, and with no other member."""
    if gid != os.getgid():
        return False
    try:
        me = pwd.getpwuid(os.getuid()).pw_name
        others = [u.pw_name for u in pwd.getpwall() if u.pw_gid == gid and u.pw_name != me]
        return not others and set(grp.getgrgid(gid).gr_mem) <= {me}
    except KeyError:
        return False


def _ancestor_problem(path: str) -> str | None:
    """Why a directory above ``path`` would let another user replace it, or None."""
    chains = {os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))}
    for start in chains:
        current = start
        while not os.path.lexists(current):  # directories still to create: from the first
            current = os.path.dirname(current)  # one that exists
        while True:
            info = os.stat(current)
            if info.st_uid not in (0, os.getuid()):
                return f"{current} above it belongs to user id {info.st_uid}"
            sticky = info.st_mode & stat.S_ISVTX
            if info.st_mode & 0o002 and not sticky:
                return f"{current} above it is writable by every user"
            if info.st_mode & 0o020 and not sticky and not _group_is_private(info.st_gid):
                return f"{current} above it is writable by its group"
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return None


def _problem(path: str) -> str | None:
    """Why ``path`` may not hold cached code (None: it is a private directory of ours)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != os.getuid():
        return f"it belongs to user id {info.st_uid}, not to you"
    if info.st_mode & 0o022:
        if not is_tagged(path):
            return "other users can write it"
        # Ours, made by symdiff, later opened up (an old umask): private again.
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    return None


def _make_parents(path: str) -> None:
    """The missing directories of ``path``, each 0700 (os.makedirs gives the ones above
    the last 0777 less the umask)."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)


def _tag(path: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(TAG_TEXT)
    os.replace(temporary, os.path.join(path, TAG))


def _private(configured: str) -> str | None:
    """The directory of ours for ``configured`` (created 0700 and tagged if missing,
    with its Numba subdirectory); None if it cannot be trusted or used."""
    path = own_directory(configured)
    try:
        why = _ancestor_problem(path)
        if why is None and path != configured:  # a subdirectory: only in a directory of ours
            owner = os.lstat(configured).st_uid
            if owner != os.getuid():
                why = f"{configured} belongs to user id {owner}, not to you"
        if why is None and not os.path.lexists(path):
            _make_parents(os.path.dirname(os.path.abspath(path)))
            os.mkdir(path, 0o700)
            _tag(path)
        numba_dir = os.path.join(path, NUMBA_DIR)
        for directory in (path, numba_dir):
            if why:
                break
            if directory == numba_dir and not os.path.lexists(numba_dir):
                os.mkdir(numba_dir, 0o700)
            why = _problem(directory)
        if why:
            warn_once("unsafe", f"symdiff: not using the compile cache {path}: {why}; using "
                                "a private temporary directory instead")
            return None
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as error:
        warn_once("unusable", f"symdiff: cannot use the compile cache {path} ({error}); "
                              "using a private temporary directory instead")
        return None
    return path


def _temporary() -> str | None:
    global _fallback
    if _fallback is None or _fallback[0] != os.getpid():
        try:
            path = tempfile.mkdtemp(prefix="symdiff-")
            os.mkdir(os.path.join(path, NUMBA_DIR), 0o700)
            _tag(path)
        except OSError:
            return None
        _fallback = (os.getpid(), path)
        atexit.register(_remove_temporary, os.getpid(), path)
    return _fallback[1]


def _remove_temporary(pid: int, path: str) -> None:
    if os.getpid() == pid:  # a forked child must not remove its parent's directory
        shutil.rmtree(path, ignore_errors=True)


def directory() -> str | None:
    """The directory to use now (the configured one when safe, else a private temporary
    one), or None when there is no disk cache (SYMDIFF_CACHE_SIZE=0 or nothing writable)."""
    if size_limit() == 0:
        return None
    return _private(configured_directory()) or _temporary()


def existing_directory() -> str | None:
    """The configured cache directory of ours, if there is one (for clearing: nothing is
    created, and a directory symdiff did not create is never touched)."""
    path = own_directory(configured_directory())
    try:
        if is_tagged(path) and _ancestor_problem(path) is None and _problem(path) is None:
            return path
    except OSError:
        pass
    return None
