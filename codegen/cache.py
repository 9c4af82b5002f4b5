"""The on-disk compile cache's entries, checked before use (which directory holds them,
and why it can be trusted: codegen.cache_dir).

An entry is one generated module ``<name>.py`` (its name ends in the hash of its source),
the machine code Numba keeps for it in ``__pycache__/<name>.*.nbi|nbc`` (pickles), and a
manifest ``<name>.sha256`` with the hash of each of those files, written once the code is
compiled.  The rules follow Python's bytecode cache (nothing is used that does not match
its source) and JAX's persistent cache (a size bound, least recently used entries
evicted):

- a module file is used only if its bytes equal the source generated for it, and Numba's
  files only if they match the manifest; anything else is deleted and recompiled;
- entries are written atomically (temporary file, then rename), so a killed process leaves
  a complete entry or none;
- checked entries (``<key>.native``): the native backend's machine code (the key a digest
  of its LLVM text and of the CPU it was compiled for) and the colorings of sparse
  derivative matrices (the key a digest of the pattern) start with the SHA-256 of the
  bytes after it, checked before they are used;
- when the cache grows past ``SYMDIFF_CACHE_SIZE`` (default 1G; "0" turns the disk cache
  off) the least recently used entries are removed; each process counts the directory
  again once it has written a 32nd of the bound, so that processes sharing the cache
  keep it near the bound together;
- clearing and eviction remove only files named as symdiff names its entries, in a
  directory symdiff created: nothing else a user keeps there;
- a file that vanished (another process cleared the cache) is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile

from .cache_dir import (  # noqa: F401 - the directory's API, used as cache.*
    NUMBA_DIR,
    CacheWarning,
    configured_directory,
    directory,
    existing_directory,
    size_limit,
    warn_once,
)

CHECKED = ".native"  # machine code, colorings: their SHA-256 (hex), "\n", the bytes
# The names symdiff gives its entries: modules and manifests (a name, then 20 hex digits
# of the source's hash), and checked entries (native code, colorings).
_ENTRY = re.compile(r"(?:[A-Za-z0-9_]+_[0-9a-f]{20}\.(?:py|sha256)"
                    r"|(?:native|coloring)_[0-9a-f]{32}\.native)")
# Bytes in each cache folder when last counted, and bytes this process wrote since.
_usage: dict[str, int] = {}
_written: dict[str, int] = {}


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
    added = 0
    for name in [module_name + ".py", *files]:
        try:
            added += os.lstat(os.path.join(folder, name)).st_size
        except OSError:
            pass
    _account(folder, added, module_name)


def _account(folder: str, added: int, keep: str) -> None:
    """Count ``added`` bytes just written to ``folder`` and keep the cache within its
    bound: the folder is counted again (a scan of its entries) on the first write of this
    process and after each 32nd of the bound this process wrote, since other processes
    write to it too; between scans, what this process wrote is added."""
    limit = size_limit()
    written = _written.get(folder, 0) + added
    if folder not in _usage or written > limit // 32 or _usage[folder] + written > limit:
        evict(folder, limit, keep=keep)
    else:
        _written[folder] = written


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
    _account(folder, len(data), key)


def _entries(folder: str) -> dict[str, list[str]]:
    """Cache entries: module name (or native key) -> its files (relative paths); files
    not named as symdiff names them are no entries."""
    entries: dict[str, list[str]] = {}
    for name in os.listdir(folder):
        if _ENTRY.fullmatch(name):
            entries.setdefault(os.path.splitext(name)[0], []).append(name)
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
    _usage[folder], _written[folder] = total, 0
    return removed


def clear() -> int:
    """Remove every entry of the configured cache; returns how many were removed."""
    folder = existing_directory()
    return 0 if folder is None else evict(folder, -1)
