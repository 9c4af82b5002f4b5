"""The compile cache is trusted only as far as it is checked (issue #9): private, never
through symlinks, content verified before anything is imported or unpickled, damaged or
unwritable entries treated as a miss, bounded in size."""

import builtins
import errno
import importlib.util
import marshal
import os
import stat
import subprocess
import sys
import warnings

import numba
import pytest

import symdiff as sd
from codegen import cache, cache_dir, load
from symdiff.cli import run

SOURCE = '''import numba


@numba.njit(error_model="numpy", cache=True)
def f(a, b):
    return a * b + {k}.0
'''


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh cache directory, fresh warnings and size bookkeeping."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(path))
    monkeypatch.delenv("SYMDIFF_CACHE_SIZE", raising=False)
    monkeypatch.setattr(cache_dir, "_warned", set())
    monkeypatch.setattr(cache, "_usage", {})
    monkeypatch.setattr(cache, "_written", {})
    return path


_count = iter(range(10**6))


def _source():
    # A source no other test loaded, so no module of that name is loaded.
    return SOURCE.format(k=f"{os.getpid()}{next(_count)}")


def _compile(source, cached=True):
    """Load (as a new process would: not the module already loaded), compile, seal."""
    load._modules.pop(load.module_name_for(source, "t"), None)
    module = load.load_module(source, "t", cached=cached)
    with load.importable(module):
        module.f.compile("float64(float64, float64)")
    load.seal(module)
    return module


def _hits(module):
    return sum(module.f.stats.cache_hits.values())


def test_directory_is_private_and_a_second_load_uses_the_compiled_code(folder):
    source = _source()
    first = _compile(source)
    assert _hits(first) == 0 and first.f(2.0, 3.0) > 6
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / "__pycache__").st_mode) == 0o700
    py = folder / (first.__name__ + ".py")
    assert stat.S_IMODE(os.stat(py).st_mode) == 0o600
    assert (folder / (first.__name__ + ".sha256")).exists()
    assert _hits(_compile(source)) == 1


def test_a_directory_of_ours_that_others_can_write_is_made_private(folder):
    _compile(_source())  # symdiff creates (and tags) the directory
    os.chmod(folder, 0o777)
    _compile(_source())
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_a_directory_symdiff_did_not_create_is_never_changed(folder):
    # An existing directory holds the cache in a subdirectory of symdiff's own; one that
    # others can write is not used at all (nor chmod-ed), since they could swap entries.
    os.makedirs(folder)
    (folder / "notes.py").write_text("my own file\n")
    module = _compile(_source())
    assert module.__file__.startswith(str(folder / "symdiff-cache"))
    assert sd.clear_cache() == 1 and (folder / "notes.py").exists()
    os.chmod(folder, 0o777)
    with pytest.warns(cache.CacheWarning, match="writable by every user"):
        module = _compile(_source())
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777
    assert not module.__file__.startswith(str(folder))


def test_clearing_removes_only_what_symdiff_wrote(folder):
    module = _compile(_source())
    kept = ["notes.py", "data_0123456789abcdef0123.csv", "x.sha256", "native_1.native"]
    for name in kept:
        (folder / name).write_text("mine\n")
    (folder / "__pycache__" / "other.nbi").write_text("mine\n")
    assert sd.clear_cache() == 1
    assert sorted(os.listdir(folder)) == sorted([*kept, "CACHEDIR.TAG", "__pycache__"])
    assert os.listdir(folder / "__pycache__") == ["other.nbi"]
    assert not (folder / (module.__name__ + ".py")).exists()


def test_a_parent_another_user_could_change_is_not_trusted(tmp_path, monkeypatch):
    # A parent writable by others (no sticky bit) lets them swap the cache directory
    # between symdiff's checks and Numba's reads: a private temporary one is used.
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(parent / "cache"))
    monkeypatch.setattr(cache_dir, "_warned", set())
    with pytest.warns(cache.CacheWarning, match="writable by every user"):
        module = _compile(_source())
    assert not (parent / "cache").exists() and module.f(2.0, 3.0) > 6
    os.chmod(parent, 0o1777)  # sticky, as /tmp: others cannot rename what is ours
    monkeypatch.setattr(cache_dir, "_warned", set())
    assert _compile(_source()).__file__.startswith(str(parent / "cache"))


def test_a_symlinked_directory_is_not_used(folder, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, folder)
    with pytest.warns(cache.CacheWarning, match="symbolic link"):
        module = _compile(_source())
    assert module.f(2.0, 3.0) > 6
    assert not os.listdir(target)
    assert not module.__file__.startswith(str(folder))


def test_a_directory_of_another_user_is_not_used(folder, monkeypatch):
    os.makedirs(folder, mode=0o700)
    real = os.getuid()
    monkeypatch.setattr(cache.os, "getuid", lambda: real + 1)
    with pytest.warns(cache.CacheWarning, match="belongs to user id"):
        module = _compile(_source())
    monkeypatch.setattr(cache.os, "getuid", lambda: real)
    assert not os.listdir(folder) or os.listdir(folder) == ["__pycache__"]
    assert module.f(1.0, 1.0) > 1


def test_a_planted_pyc_beside_the_module_is_never_executed(folder):
    source = _source()
    module = _compile(source)
    path = module.__file__
    planted = compile("import builtins\nbuiltins.SYMDIFF_PLANTED = True\n" + source, path,
                      "exec")
    info = os.stat(path)
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += int(info.st_mtime).to_bytes(4, "little") + info.st_size.to_bytes(4, "little")
    pyc = importlib.util.cache_from_source(path)
    os.makedirs(os.path.dirname(pyc), exist_ok=True)
    with open(pyc, "wb") as out:
        out.write(header + marshal.dumps(planted))
    again = _compile(source)
    assert not hasattr(builtins, "SYMDIFF_PLANTED")
    assert again.f(2.0, 3.0) == module.f(2.0, 3.0)


def test_an_edited_module_is_rewritten_from_its_source(folder):
    source = _source()
    module = _compile(source)
    expected = module.f(2.0, 3.0)
    with open(module.__file__, "r+", encoding="utf-8") as handle:
        text = handle.read().replace("a * b", "a * a")
        handle.seek(0)
        handle.write(text)
    with pytest.warns(cache.CacheWarning, match="did not match its source"):
        again = _compile(source)
    assert again.f(2.0, 3.0) == expected
    with open(again.__file__, encoding="utf-8") as handle:
        assert handle.read() == source


@pytest.mark.parametrize("damage", ["truncate", "garbage", "unsealed"])
def test_damaged_or_unrecorded_numba_files_are_recompiled(folder, damage):
    source = _source()
    module = _compile(source)
    files = cache.numba_files(str(folder), module.__name__)
    assert len(files) == 2
    if damage == "unsealed":  # e.g. planted, or written by a process killed before sealing
        os.unlink(folder / (module.__name__ + ".sha256"))
    for name in files:
        path = folder / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x80garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cache.CacheWarning)
        again = _compile(source)
    assert _hits(again) == 0 and again.f(2.0, 3.0) == module.f(2.0, 3.0)
    assert _hits(_compile(source)) == 1  # sealed again


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unusable_directory_falls_back_to_a_private_temporary_one(tmp_path, where):
    configured = tmp_path / "a-file" if where == "file" else "/proc/symdiff-cache"
    if where == "file":
        configured.write_text("not a directory")
    script = ("import warnings, symdiff as sd\n"
              "with warnings.catch_warnings(record=True) as seen:\n"
              "    warnings.simplefilter('always')\n"
              "    f = sd.compile('a*b', background=False, backend='numba')\n"
              "    print(f.grad(2.0, 3.0)[0])\n"
              "print(f.loader.loaded['grad', False].dispatcher.py_func.__code__.co_filename)\n"
              "print(any('temporary directory' in str(w.message) for w in seen))\n")
    env = dict(os.environ, SYMDIFF_CACHE_DIR=str(configured), SYMDIFF_BACKGROUND="0")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "3.0" and out[2] == "True"
    assert "symdiff-" in out[1] and not os.path.exists(os.path.dirname(out[1]))  # removed


def test_a_failed_cache_write_compiles_in_memory(folder, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "write_atomic", full_disk)
    with pytest.warns(cache.CacheWarning, match="No space left"):
        module = _compile(_source())
    assert module.__symdiff_cache__ is None and module.f(2.0, 3.0) > 6


def test_a_failed_numba_cache_write_compiles_without_the_cache(folder, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numba.core.caching.IndexDataCacheFile, "save", full_disk)
    f = sd.compile(sd.parse("a * b - 17.25"), background=False, backend="numba")
    with pytest.warns(cache.CacheWarning, match="No space left"):
        assert list(f.grad(2.0, 3.0)) == [3.0, 2.0]


def test_size_bound_evicts_least_recently_used_entries(folder, monkeypatch):
    modules = [_compile(_source()) for _ in range(3)]
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
               if os.path.isfile(os.path.join(folder, n)))
    size += sum(os.path.getsize(os.path.join(folder, "__pycache__", n))
                for n in os.listdir(folder / "__pycache__"))
    os.utime(folder / (modules[0].__name__ + ".sha256"), (1, 1))  # the least recent
    monkeypatch.setenv("SYMDIFF_CACHE_SIZE", str(size))  # full: the next entry evicts one
    _compile(_source())
    left = {n.split(".")[0] for n in os.listdir(folder) if n.endswith(".py")}
    assert modules[0].__name__ not in left and len(left) == 3
    assert not cache.numba_files(str(folder), modules[0].__name__)


@pytest.mark.parametrize(("text", "size"), [("500M", 500 << 20), ("2G", 2 << 30),
                                            ("1.5k", 1536), ("123", 123), ("", 1 << 30),
                                            ("64MiB", 64 << 20)])
def test_cache_size_setting(monkeypatch, text, size):
    monkeypatch.setenv("SYMDIFF_CACHE_SIZE", text)
    assert cache.size_limit() == size


def test_cache_size_zero_turns_the_disk_cache_off(folder, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_SIZE", "0")
    module = _compile(_source())
    assert module.__symdiff_cache__ is None and not folder.exists()


def test_clear_cache_and_the_command_line(folder, capsys):
    _compile(_source())
    _compile(_source())
    assert sd.clear_cache() == 2
    assert not cache.numba_files(str(folder), "t")
    _compile(_source())
    assert run(["--clear-cache"]) == 0
    assert f"removed 1 entries from {folder}" in capsys.readouterr().out


def test_separate_processes_generate_the_same_sources():
    # Sets of nodes iterate by identity, so any walk over one would order the source
    # differently in each process, and no process would find another's cached code.
    script = os.path.join(os.path.dirname(__file__), "sources_script.py")
    outputs = {subprocess.run([sys.executable, script], capture_output=True, text=True,
                              check=True, env=dict(os.environ, PYTHONHASHSEED=str(seed))).stdout
               for seed in range(4)}
    assert len(outputs) == 1 and len(next(iter(outputs)).split()) == 10


def test_numba_cache_variables_do_not_move_symdiffs_machine_code(tmp_path):
    # NUMBA_CACHE_DIR (a shared directory in many containers) would put Numba's pickles
    # outside the manifest's check; NUMBA_CACHE_LOCATOR_CLASSES would choose another
    # place again.  symdiff's code stays beside its modules, and a second process loads it.
    shared = tmp_path / "numba-shared"
    script = ("import symdiff as sd\n"
              "f = sd.compile('a*b - 3.5*a', background=False, backend='numba')\n"
              "print(f.grad(2.0, 3.0).tolist())\n"
              "d = f.loader.loaded['grad', False].dispatcher\n"
              "print(sum(d.stats.cache_hits.values()))\n")
    env = dict(os.environ, SYMDIFF_CACHE_DIR=str(tmp_path / "cache"),
               NUMBA_CACHE_DIR=str(shared), SYMDIFF_BACKGROUND="0")
    locators = "numba.core.caching.UserWideCacheLocator"  # the second run: another list
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=dict(env, NUMBA_CACHE_LOCATOR_CLASSES=listed),
                           check=True).stdout.split() for listed in ("", locators)]
    assert runs[0] == ["[-0.5,", "2.0]", "0"] and runs[1] == ["[-0.5,", "2.0]", "1"]
    assert any(n.endswith(".nbi") for n in os.listdir(tmp_path / "cache" / "__pycache__"))
    assert not shared.exists() or not any(files for _, _, files in os.walk(shared))


def test_clearing_while_other_processes_compile_is_a_miss_for_them(folder):
    # Other processes clear the cache under compiles in flight: every compile still
    # answers (a vanished file is a miss), with the Numba and the native backends.
    worker = ("import os, sys, symdiff as sd\n"
              "for k in range(6):\n"
              "    f = sd.compile(f'a*b + {os.getpid()}.{k}*a', backend=sys.argv[1],\n"
              "                   background=False)\n"
              "    assert f.grad(2.0, 3.0)[1] == 2.0\n"
              "print('ok')\n")
    env = dict(os.environ, SYMDIFF_CACHE_DIR=str(folder), SYMDIFF_BACKGROUND="0")
    workers = [subprocess.Popen([sys.executable, "-c", worker, backend], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for backend in ("numba", "native")]
    while any(w.poll() is None for w in workers):
        sd.clear_cache()
    for w in workers:
        out, err = w.communicate()
        assert w.returncode == 0 and out.strip() == "ok", err[-2000:]


def test_the_size_bound_holds_across_processes(folder, monkeypatch):
    # Another process's entries are seen once this one has written a 32nd of the bound:
    # the least recently used entry, whoever wrote it, goes.
    _compile(_source())  # the first write counts the folder
    foreign = folder / ("t_" + "ab" * 10 + ".py")  # an entry another process wrote
    foreign.write_bytes(b"#" * 200_000)
    os.utime(foreign, (1, 1))  # the least recently used
    monkeypatch.setenv("SYMDIFF_CACHE_SIZE", "150K")
    _compile(_source())  # writes more than 150K / 32: counts again, evicts
    assert not foreign.exists()


def test_another_tools_cache_tag_is_not_symdiffs(folder, monkeypatch):
    # A CACHEDIR.TAG of another tool (a build directory) does not make the directory
    # symdiff's: the cache goes into a subdirectory of its own, and clearing spares it.
    os.makedirs(folder)
    (folder / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    (folder / ("mylib_" + "0123456789abcdef0123" + ".py")).write_text("theirs\n")
    module = _compile(_source())
    assert module.__file__.startswith(str(folder / "symdiff-cache"))
    sd.clear_cache()
    assert (folder / ("mylib_" + "0123456789abcdef0123" + ".py")).exists()


def test_missing_parents_are_made_private_whatever_the_umask(tmp_path, monkeypatch):
    deep = tmp_path / "a" / "b" / "cache"
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(deep))
    monkeypatch.setattr(cache_dir, "_warned", set())
    old = os.umask(0)
    try:
        _compile(_source())
    finally:
        os.umask(old)
    for made in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
