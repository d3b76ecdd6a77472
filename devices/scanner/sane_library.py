"""The one SANE library of this process: its config dir, init/exit, and every open handle.

libsane is process-global: `sane_init` reads SANE_CONFIG_DIR (dll.conf names the
backends to load, <backend>.conf their settings) and all devices of the process share
that one initialisation. So all SANE scanners of one terminal share ONE config dir;
asking for a second, different one while a scanner is open is refused
(SaneConfigConflict), and the environment variable is set here, before init, never
anywhere else.

`reload()` does sane_exit + sane_init: backends re-read their config and rescan for
devices (a USB scanner plugged in again is found only after that; the SANE test backend
takes its scripted behaviour from test.conf at init). sane_exit frees every handle, and a
python-sane handle closed after that crashes the process (use after free), so every
handle is opened through `open_handle()`, remembered, and closed here before exit;
owners notice through `generation` and reopen.

SIGPIPE: sane-backends' thread helper (sanei_thread, used by the test backend and many
USB backends built with pthreads) sets SIGPIPE back to SIG_DFL whenever it joins its
reader thread, i.e. after every scan, whatever the process had. Python ignores SIGPIPE
and expects EPIPE errors instead; with SIG_DFL the next write to a closed socket (an
MJPEG client gone, a broken HTTP or MQTT link) kills the whole terminal. So, when this
module is imported on the main thread, SIGPIPE gets a do-nothing handler (a handler is
left alone by sanei_thread, and writes still fail with EPIPE), and after every scan,
cancel, close and reload the disposition is checked and set back to ignored if a
backend made it fatal (`keep_sigpipe_harmless`).

Calls into libsane are serialised by one lock: SANE does not promise that backends are
thread-safe. A scan holds it for its whole duration; `try_lock` lets a supervisor's
poll skip, instead of blocking behind a scan. `sane_cancel` is the exception the SANE
standard allows at any time, and is called without the lock to stop a scan.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sane

from devices.base import DeviceError

log = logging.getLogger(__name__)

SaneError = sane._sane.error  # what libsane's failures raise: str() is sane_strstatus()
TYPE_FIXED = sane._sane.TYPE_FIXED
UNIT_MM = sane._sane.UNIT_MM

_lock = threading.RLock()
_initialised = False
_config_dir: str | None = None  # None: the system's (/etc/sane.d); set before the first init
_handles: set[Any] = set()  # every open sane.SaneDev
_generation = 0


_libc = ctypes.CDLL(None, use_errno=True)
_libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.signal.restype = ctypes.c_void_p
_SIG_DFL, _SIG_IGN = 0, 1


def _sigpipe_noop(signum: int, frame: object) -> None:
    """SIGPIPE handled and dropped: the write that caused it fails with EPIPE, as Python expects."""


def _install_sigpipe_handler() -> None:
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGPIPE) in (signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGPIPE, _sigpipe_noop)


def keep_sigpipe_harmless() -> None:
    """Undo a backend's SIGPIPE reset to SIG_DFL (see module notes); callable from any thread."""
    previous = _libc.signal(signal.SIGPIPE, _SIG_IGN)
    if previous not in (None, _SIG_DFL, _SIG_IGN):  # a real handler (ours): put it back
        _libc.signal(signal.SIGPIPE, previous)
    elif previous in (None, _SIG_DFL):
        log.debug("a SANE backend had reset SIGPIPE to its default (fatal); ignored again")


_install_sigpipe_handler()


class SaneConfigConflict(DeviceError):
    """A second SANE config dir was asked for while SANE runs with another one."""


def _normal(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def _apply_dir() -> None:
    if _config_dir is None:
        os.environ.pop("SANE_CONFIG_DIR", None)
    else:
        os.environ["SANE_CONFIG_DIR"] = _config_dir


def config_dir() -> str | None:
    return _config_dir


def generation() -> int:
    """Increases at every reload: handles opened before are closed."""
    return _generation


def use_config_dir(path: str | None) -> None:
    """Run SANE with this config dir (None: the system's). Switching needs a reload and
    is refused while any handle is open (see module notes)."""
    global _config_dir
    wanted = _normal(path)
    with _lock:
        if wanted == _config_dir:
            return
        if _initialised and _handles:
            raise SaneConfigConflict(
                f"SANE already runs with config dir {_config_dir or 'the system default'} and a scanner is "
                f"open; all SANE scanners of a terminal share one config dir: set the same config_dir for "
                f"each (asked for {wanted or 'the system default'})")
        _config_dir = wanted
        if _initialised:
            _reload_locked("config dir changed")
        else:
            _apply_dir()


def ensure_init() -> None:
    global _initialised
    with _lock:
        if not _initialised:
            _apply_dir()
            sane.init()
            _initialised = True
            log.info("SANE initialised (config dir %s)", _config_dir or "system default")


def reload(reason: str = "") -> None:
    """sane_exit + sane_init: backends re-read their config and rescan (see module notes)."""
    with _lock:
        _reload_locked(reason)


def _reload_locked(reason: str) -> None:
    global _initialised, _generation
    for handle in list(_handles):
        _close_locked(handle)
    if _initialised:
        sane.exit()
        _initialised = False
    _generation += 1
    _apply_dir()
    sane.init()
    _initialised = True
    keep_sigpipe_harmless()
    log.info("SANE reloaded%s (config dir %s)", f" ({reason})" if reason else "", _config_dir or "system default")


def shutdown() -> None:
    """Close every handle and sane_exit (the next use initialises again)."""
    global _initialised, _generation
    with _lock:
        for handle in list(_handles):
            _close_locked(handle)
        if _initialised:
            sane.exit()
            _initialised = False
            _generation += 1
        keep_sigpipe_harmless()


def devices() -> list[tuple[str, str, str, str]]:
    """(name, vendor, model, type) of every device the loaded backends find now."""
    with _lock:
        ensure_init()
        return [tuple(d) for d in sane.get_devices()]  # type: ignore[misc]


def open_handle(name: str) -> Any:
    """sane_open, remembered so a reload can close it first."""
    with _lock:
        ensure_init()
        handle = sane.open(name)
        _handles.add(handle)
        return handle


def close_handle(handle: Any) -> None:
    with _lock:
        _close_locked(handle)


def _close_locked(handle: Any) -> None:
    if handle in _handles:
        _handles.discard(handle)
        try:
            handle.close()
        except SaneError as exc:  # closing a device that is gone may fail; it is closed anyway
            log.debug("closing a SANE handle: %s", exc)
        keep_sigpipe_harmless()


def is_open(handle: Any) -> bool:
    return handle in _handles


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the SANE lock (blocking) for a sequence of calls."""
    with _lock:
        yield


@contextlib.contextmanager
def try_lock() -> Iterator[bool]:
    """Hold the SANE lock if it is free now; yields whether it is held."""
    got = _lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            _lock.release()
