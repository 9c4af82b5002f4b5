"""The on-disk compile cache: a private directory whose entries are checked before use.

An entry is one generated module ``<name>.py`` (its name ends in the hash of its source),
the machine code Numba keeps for it in ``__pycache__/<name>.*.nbi|nbc`` (pickles), and a
manifest ``<name>.sha256`` with the hash of each of those files, written once the code is
compiled.  The rules follow pip's cache (used only when the directory is the user's own),
Python's bytecode cache (nothing is used that does not match its source) and JAX's
persistent cache (a size bound, least recently used entries evicted):

- the directory is created 0700; one that is a symlink, belongs to another user or that
  others can write is not used: a private temporary directory (removed at exit) replaces
  it, with a warning;
- a module file is used only if its bytes equal the source generated for it, and Numba's
  files only if they match the manifest; anything else is deleted and recompiled;
- entries are written atomically (temporary file, then rename), so a killed process leaves
  a complete entry or none;
- checked entries (``<key>.native``): the native backend's machine code (the key a digest
  of its LLVM text and of the CPU it was compiled for) and the colorings of sparse
  derivative matrices (the key a digest of the pattern) start with the SHA-256 of the
  bytes after it, checked before they are used;
- when the cache grows past ``SYMDIFF_CACHE_SIZE`` (default 1G; "0" turns the disk cache
  off) the least recently used entries are removed.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import re
import shutil
import stat
import tempfile
import warnings

DEFAULT_SIZE = 1 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
NUMBA_DIR = "__pycache__"  # Numba's files of a module, beside it (codegen.numba_cache)
CHECKED = ".native"  # machine code, colorings: their SHA-256 (hex), "\n", the bytes
_fallback: tuple[int, str] | None = None  # (creating pid, private temporary directory)
_usage: dict[str, int] = {}  # bytes in each cache folder: counted once, then added to
_warned: set[str] = set()


class CacheWarning(UserWarning):
    """The compile cache could not be used as configured (symdiff goes on without it)."""


def warn_once(key: str, message: str) -> None:
    """Warn about a cache problem once per process and kind."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, CacheWarning, stacklevel=4)


def configured_directory() -> str:
    """Where the cache lives: $SYMDIFF_CACHE_DIR, else $XDG_CACHE_HOME/symdiff, else
    ~/.cache/symdiff."""
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
        # Ours but writable by others (an old umask): make it private before trusting it.
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    return None


def _private(path: str) -> str | None:
    """Create ``path`` (0700) and its Numba subdirectory; None if it cannot be used."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        numba_dir = os.path.join(path, NUMBA_DIR)
        for directory in (path, numba_dir):
            if directory == numba_dir and not os.path.lexists(numba_dir):
                os.mkdir(numba_dir, 0o700)
            why = _problem(directory)
            if why:
                warn_once("unsafe", f"symdiff: not using the compile cache {directory}: {why}; "
                                    "using a private temporary directory instead")
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


def read_private(path: str) -> bytes | None:
    """The bytes of a regular file of ours at ``path``, never through a symlink; None if
    there is none (or it is someone else's)."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        return file.read()


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (which replaces
    a symlink at ``path`` rather than following it)."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        _unlink(temporary)
        raise


def umask() -> int:
    """The process's umask, read without changing it (os.umask would change it for
    every thread while it is read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def numba_files(folder: str, module_name: str) -> list[str]:
    """Numba's cache files of one module (they are named after the module)."""
    numba_dir = os.path.join(folder, NUMBA_DIR)
    try:
        names = os.listdir(numba_dir)
    except OSError:
        return []
    prefix = module_name + "."
    return sorted(os.path.join(NUMBA_DIR, n) for n in names
                  if n.startswith(prefix) and n.endswith((".nbi", ".nbc")))


def _manifest_text(folder: str, files: list[str]) -> str | None:
    lines = []
    for name in files:
        data = read_private(os.path.join(folder, name))
        if data is None:
            return None
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    return "".join(lines)


def _matches_manifest(folder: str, module_name: str, files: list[str]) -> bool:
    """Whether Numba's ``files`` of a module are exactly those its manifest records."""
    recorded = read_private(os.path.join(folder, module_name + ".sha256"))
    return recorded is not None and _manifest_text(folder, files) == recorded.decode(
        "ascii", "replace")


def is_compiled(folder: str, module_name: str) -> bool:
    """Whether the module's machine code is in the cache, matching its manifest (loading
    it then compiles nothing); reads only, unlike verify_compiled."""
    files = numba_files(folder, module_name)
    return bool(files) and _matches_manifest(folder, module_name, files)


def verify_compiled(folder: str, module_name: str) -> None:
    """Delete Numba's files of a module unless each matches the module's manifest (they
    are pickles: never let Numba read one that we did not write)."""
    files = numba_files(folder, module_name)
    manifest = os.path.join(folder, module_name + ".sha256")
    if not files:
        return
    if _matches_manifest(folder, module_name, files):
        os.utime(manifest)  # recently used: evicted last
        return
    if read_private(manifest) is not None:
        warn_once("damaged", "symdiff: a damaged compile cache entry was removed and will be "
                             f"recompiled ({module_name})")
    for name in files:
        _unlink(os.path.join(folder, name))
    _unlink(manifest)


def seal(folder: str, module_name: str) -> None:
    """Record the hashes of a module's freshly compiled Numba files, then keep the cache
    within its size bound."""
    files = numba_files(folder, module_name)
    text = _manifest_text(folder, files)
    if text:
        write_atomic(os.path.join(folder, module_name + ".sha256"), text.encode("ascii"))
    if folder in _usage:  # a full scan per compile would cost O(entries) each time
        for name in [module_name + ".py", *files]:
            try:
                _usage[folder] += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    if _usage.get(folder, math.inf) > size_limit():
        evict(folder, size_limit(), keep=module_name)


def _checked_path(folder: str, key: str) -> str:
    return os.path.join(folder, key + CHECKED)


def read_checked(key: str) -> bytes | None:
    """The bytes cached under ``key`` (the native backend's object files, colorings), if
    their recorded SHA-256 matches; a damaged entry is removed.  None: not cached."""
    folder = directory()
    if folder is None:
        return None
    path = _checked_path(folder, key)
    data = read_private(path)
    if data is None:
        return None
    digest, _, code = data.partition(b"\n")
    if hashlib.sha256(code).hexdigest().encode("ascii") != digest:
        warn_once("damaged", "symdiff: a damaged compile cache entry was removed and will be "
                             f"recompiled ({key})")
        _unlink(path)
        return None
    try:
        os.utime(path)  # recently used: evicted last
    except OSError:
        pass
    return code


def write_checked(key: str, code: bytes) -> None:
    """Cache the bytes ``code`` under ``key`` (their SHA-256 first, checked on reading),
    then keep the cache within its size bound."""
    folder = directory()
    if folder is None:
        return
    data = hashlib.sha256(code).hexdigest().encode("ascii") + b"\n" + code
    try:
        write_atomic(_checked_path(folder, key), data)
    except OSError as error:
        warn_once("write", f"symdiff: cannot write the compile cache in {folder} ({error}); "
                           "going on without it")
        return
    if folder in _usage:
        _usage[folder] += len(data)
    if _usage.get(folder, math.inf) > size_limit():
        evict(folder, size_limit(), keep=key)


def _entries(folder: str) -> dict[str, list[str]]:
    """Cache entries: module name (or native key) -> its files (relative paths)."""
    entries: dict[str, list[str]] = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if ext in (".py", ".sha256", CHECKED):
            entries.setdefault(stem, []).append(name)
    for stem, files in entries.items():
        files += numba_files(folder, stem)
    return entries


def evict(folder: str, limit: int, keep: str | None = None) -> int:
    """Remove least recently used entries until the cache holds at most ``limit`` bytes;
    returns the number removed."""
    entries = _entries(folder)
    sizes, used = {}, {}
    for stem, files in entries.items():
        infos = []
        for name in files:
            try:
                infos.append(os.lstat(os.path.join(folder, name)))
            except OSError:
                pass
        sizes[stem] = sum(i.st_size for i in infos)
        used[stem] = max((i.st_mtime for i in infos), default=0.0)
    total, removed = sum(sizes.values()), 0
    for stem in sorted(entries, key=used.__getitem__):
        if total <= limit:
            break
        if stem == keep:
            continue
        for name in entries[stem]:
            _unlink(os.path.join(folder, name))
        total -= sizes[stem]
        removed += 1
    _usage[folder] = total
    return removed


def clear() -> int:
    """Remove every entry of the configured cache; returns how many were removed."""
    folder = configured_directory()
    if not os.path.isdir(folder) or _problem(folder):
        return 0
    return evict(folder, -1)
