"""One speaker for the kiosk's voice prompts: pyttsx3 + espeak-ng behind a queue.

Why it is shaped like this (see STACK.md, "Voice"):

* pyttsx3's espeak driver is not thread-safe and espeak-ng is process-global, so
  exactly one engine exists and every engine call happens on one dedicated
  thread (``voice-engine-N``). Callers, including the UI thread, only queue work.
* ``runAndWait()`` may return before ``save_to_file`` has written (the first call
  of an engine always does), and it hangs for good when the engine's synthesis
  callback is lost. So the result of an utterance is the ``finished-utterance``
  callback, and a dispatcher thread (``voice-speaker``) waits for it with a
  watchdog. On a timeout the engine is discarded and a fresh one is made.
* Audio is always synthesised to a WAV file. With ``output_dir`` the file is the
  result (tests, terminals without a sound card); otherwise the dispatcher plays
  it with ``aplay`` (or ``paplay`` / sox ``play``) as a child process it can kill.
  pyttsx3's own ``say()`` runs ``os.system("aplay ...")``: it cannot be
  interrupted, and when there is no sound card or no ``aplay`` it reports the
  utterance as completed anyway, so a silent terminal would go unnoticed.

Privacy: the spoken text is never logged at INFO or above; logs carry the
utterance number, an optional key and the text length.

Only one ``Speaker`` per process: espeak-ng keeps a single synthesis callback,
and the most recently created pyttsx3 espeak engine owns it.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import wave
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, Self

log = logging.getLogger(__name__)

DEFAULT_VOICE = "cmn-latn-pinyin"
#: espeak-ng's own limits for words per minute; values outside are clamped.
RATE_MIN, RATE_MAX = 80, 450
#: Players tried in order when none is given; the WAV path is appended.
PLAYERS: tuple[tuple[str, ...], ...] = (("aplay", "-q"), ("paplay",), ("play", "-q"))
_POLL_S = 0.05

# Engines discarded by the watchdog are kept alive for the life of the process:
# pyttsx3's espeak driver, when garbage-collected, sets espeak-ng's process-wide
# synthesis callback to NULL, which would silence the fresh engine at a random moment.
_GRAVEYARD: list[Any] = []
# Let them go at exit while the modules their __del__ needs still exist.
atexit.register(_GRAVEYARD.clear)
_OPEN: weakref.WeakSet[Speaker] = weakref.WeakSet()  # to warn about a second speaker


class SpeechError(RuntimeError):
    """Speech could not be produced; the message is meant for a technician."""


class Utterance:
    """One queued prompt; ``done`` is set once it was spoken, written, dropped or failed.

    ``path`` is the WAV file when the speaker writes files (``output_dir``), else None.
    ``cancelled`` is True when the prompt was dropped (interrupt, stop, close,
    speech disabled) before it was fully spoken; a cancelled prompt leaves no file.
    ``error`` holds a :class:`SpeechError` when speech failed.
    """

    def __init__(self, text: str, seq: int, key: str | None = None) -> None:
        self.text = text
        self.seq = seq
        self.key = key
        self.done = threading.Event()
        self.path: str | None = None
        self.error: SpeechError | None = None
        self.cancelled = False
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the utterance is finished; False on timeout."""
        return self.done.wait(timeout)

    def _finish(self, *, path: str | None = None, error: SpeechError | None = None,
                cancelled: bool = False) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.path, self.error, self.cancelled = path, error, cancelled
            self.done.set()

    def _label(self) -> str:
        key = f" key={self.key}" if self.key else ""
        return f"#{self.seq}{key} ({len(self.text)} chars)"

    def __repr__(self) -> str:  # never the text: it may hold personal data
        state = ("cancelled" if self.cancelled else "error" if self.error else "done") \
            if self.done.is_set() else "pending"
        return f"<Utterance {self._label()} {state}>"


def _new_engine() -> Any:
    """A fresh pyttsx3 espeak engine (not ``pyttsx3.init``, which hands back a cached one)."""
    import pyttsx3  # type: ignore[import-untyped]

    return pyttsx3.Engine("espeak")


def _select_voice(voices: Sequence[Any], wanted: str) -> tuple[str, str | None]:
    """Pick the voice id for ``wanted``; returns (id, note) where note explains a fallback."""
    w = wanted.strip().lower()
    for v in voices:
        vid = str(v.id).lower()
        if w in (vid, vid.rsplit("/", 1)[-1], str(getattr(v, "name", "") or "").lower()):
            return str(v.id), None

    def rank(v: Any) -> int | None:
        langs = [str(lang).lower() for lang in (getattr(v, "languages", None) or [])]
        vid = str(v.id).lower()
        if "cmn-latn-pinyin" in vid:
            return 0  # the only one that reads hanzi as Mandarin
        if any(lang.startswith("cmn") for lang in langs):
            return 1
        if any(lang.startswith("zh") for lang in langs):
            return 2
        return None

    ranked = sorted(((r, i, v) for i, v in enumerate(voices) if (r := rank(v)) is not None),
                    key=lambda t: (t[0], t[1]))
    if not ranked:
        raise SpeechError(f"espeak-ng has no voice {wanted!r} and no Mandarin voice "
                          f"(found {len(voices)} voices); check the espeak-ng-data package")
    chosen = str(ranked[0][2].id)
    return chosen, f"voice {wanted!r} not found; using {chosen!r} instead"


def _flush_espeak() -> None:
    """After a watchdog restart: drop synthesis the discarded engine left queued in
    espeak-ng, or its audio would end up in the fresh engine's first file."""
    try:
        # pyttsx3 exposes no public call for this
        from pyttsx3.drivers import _espeak  # type: ignore[import-untyped]

        if _espeak.IsPlaying():
            _espeak.Cancel()
    except Exception as exc:  # noqa: BLE001 - best effort
        log.debug("Voice: could not flush espeak-ng: %s", exc)


def _same(actual: Any, wanted: Any) -> bool:
    """Whether an engine property already has the wanted value."""
    if isinstance(wanted, str):
        return str(actual or "").lower() == wanted.lower()
    try:
        return abs(float(actual) - float(wanted)) < 0.005
    except (TypeError, ValueError):
        return False


def _wav_seconds(path: str) -> float:
    """Duration of a WAV file; raises on a missing or broken file."""
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate() or 1)


class _SynthJob:
    """One synthesis request handed to the engine thread."""

    def __init__(self, text: str, path: str, rate: int, volume: float) -> None:
        self.text, self.path, self.rate, self.volume = text, path, rate, volume
        self.finished = threading.Event()  # set by the finished-utterance callback
        self.completed = False
        self.error: BaseException | None = None


class _EngineThread:
    """Owns one pyttsx3 engine; every call on that engine is made from this thread."""

    def __init__(self, number: int, voice: str) -> None:
        self.number = number
        self.wanted_voice = voice
        self.inbox: deque[_SynthJob | None] = deque()
        self._wake = threading.Condition()
        self.ready = threading.Event()
        self.engine: Any = None
        self.voice_id: str | None = None
        self.voice_note: str | None = None
        self.init_error: BaseException | None = None
        self.abandoned = False
        self._current: _SynthJob | None = None
        self.thread = threading.Thread(target=self._run, name=f"voice-engine-{number}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: _SynthJob | None) -> None:
        with self._wake:
            self.inbox.append(job)
            self._wake.notify()

    def abandon(self) -> None:
        """Give up on this engine (called from the dispatcher when the watchdog fires)."""
        if self.engine is not None:
            _GRAVEYARD.append(self.engine)  # before anything can drop the last reference
        self.abandoned = True
        # Free a runAndWait() stuck in the driver's sleep loop. pyttsx3 has no public
        # non-blocking way: Engine.endLoop() would call into espeak-ng from this thread.
        try:
            self.engine.proxy._driver._looping = False
        except AttributeError:
            pass  # another pyttsx3 version: the daemon thread just stays parked
        self.submit(None)

    # -- engine thread ----------------------------------------------------------------
    def _run(self) -> None:
        engine: Any = None
        try:
            engine = _new_engine()
            if self.number > 1:
                _flush_espeak()
            self.voice_id, self.voice_note = _select_voice(engine.getProperty("voices"),
                                                           self.wanted_voice)
            engine.connect("finished-utterance", self._on_finished)
            engine.connect("error", self._on_error)
            self.engine = engine
        except BaseException as exc:  # noqa: BLE001 - reported to the Speaker as a fault
            self.init_error = exc
        finally:
            self.ready.set()
        try:
            if self.init_error is None:
                self._serve(engine)
        finally:
            self._current = None
            self.engine = None  # break the engine -> callbacks -> self -> engine cycle
            if self.abandoned and engine is not None and engine not in _GRAVEYARD:
                _GRAVEYARD.append(engine)  # see _GRAVEYARD: never let it be collected

    def _serve(self, engine: Any) -> None:
        checked_voice = False
        while True:
            with self._wake:
                while not self.inbox:
                    self._wake.wait()
                job = self.inbox.popleft()
            if job is None or self.abandoned:
                return
            self._current = job
            try:
                # espeak-ng's voice, rate and volume are process-wide: anything else that
                # touches espeak-ng (another pyttsx3 engine) changes them. Reading is cheap.
                for name, value in (("voice", self.voice_id), ("rate", job.rate),
                                    ("volume", job.volume)):
                    if not _same(engine.getProperty(name), value):
                        engine.setProperty(name, value)  # queued until runAndWait at first
                engine.save_to_file(job.text, job.path)
                engine.runAndWait()
                # The result is the finished-utterance callback, not this return: the
                # first runAndWait of an engine returns before the file is written.
                if not checked_voice and job.finished.is_set() and not self.abandoned:
                    checked_voice = True
                    actual = engine.getProperty("voice")
                    if actual and str(actual).lower() != str(self.voice_id).lower():
                        log.warning("Voice: espeak-ng is using voice %r instead of %r",
                                    actual, self.voice_id)
            except Exception as exc:  # noqa: BLE001 - the dispatcher restarts the engine
                job.error = exc
                job.finished.set()

    def _on_finished(self, name: Any = None, completed: bool = True, **_: Any) -> None:
        # Runs on espeak-ng's internal thread, after the WAV file has been written.
        job = self._current
        if job is not None and not job.finished.is_set():
            job.completed = bool(completed)
            job.finished.set()

    def _on_error(self, name: Any = None, exception: BaseException | None = None,
                  **_: Any) -> None:
        log.warning("Voice: speech engine reported an error: %s", exception)


class Speaker:
    """Speaks prompts on a worker thread; the kiosk runs on whether speech works or not.

    ``say()`` never blocks and never raises for speech problems: look at
    ``Utterance.error``, ``available`` and ``fault``. The constructor waits (at
    most ``watchdog_s``, normally a fraction of a second) for the engine to start,
    so ``available``, ``fault`` and ``voice_id`` are settled when it returns.
    """

    def __init__(self, *, enabled: bool = True, voice: str = DEFAULT_VOICE, rate: int = 160,
                 volume: float = 1.0, output_dir: str | os.PathLike[str] | None = None,
                 watchdog_s: float = 15.0, player: Sequence[str] | None = None) -> None:
        if watchdog_s <= 0:
            raise ValueError("watchdog_s must be positive")
        self.enabled = bool(enabled)
        self.voice = voice
        self.output_dir: str | None = os.fspath(output_dir) if output_dir else None
        self.watchdog_s = float(watchdog_s)
        self.available = False
        self.fault: str | None = None
        self.voice_id: str | None = None
        self.restarts = 0
        self._rate = self._clamp_rate(rate)
        self._volume = self._clamp_volume(volume)
        self._player: tuple[str, ...] | None = tuple(player) if player else None
        self._cond = threading.Condition()
        self._pending: deque[Utterance] = deque()
        self._current: Utterance | None = None
        self._closed = False
        self._seq = itertools.count(1)
        self._token = uuid.uuid4().hex[:8]
        self._tmpdir: str | None = None
        self._engine: _EngineThread | None = None
        self._engines = itertools.count(1)
        self._last_play_error: str | None = None
        self._worker = threading.Thread(target=self._run, name="voice-speaker", daemon=True)
        if any(not other._closed for other in list(_OPEN)):
            log.warning("Voice: another Speaker is still open in this process; espeak-ng has "
                        "one synthesis callback, so the two will keep breaking each other")
        _OPEN.add(self)
        try:
            self._prepare_output()
            self._engine = self._start_engine()
        except SpeechError as exc:
            self.fault = str(exc)
            log.error("Voice: speech is off: %s", exc)
            return
        self.available = True
        self._worker.start()
        log.info("Voice: speaker ready (voice %s, %s)", self.voice_id,
                 f"writing WAV files to {self.output_dir}" if self.output_dir
                 else f"playing with {' '.join(self._player or ())}")

    # -- public API ---------------------------------------------------------------------
    def say(self, text: str, *, interrupt: bool = True, key: str | None = None) -> Utterance:
        """Queue a prompt. ``interrupt`` (the default) first drops queued prompts and stops
        the one being spoken, because a new screen makes the old prompt wrong.
        ``key`` (e.g. a text key) is what the logs show instead of the text."""
        utt = Utterance(str(text or "").strip(), next(self._seq), key)
        with self._cond:
            if interrupt:
                self._cancel_all_locked()
            if self._closed:
                utt._finish(error=SpeechError("speaker is closed"))
            elif not self.available:
                utt._finish(error=SpeechError(f"speech unavailable: {self.fault}"))
            elif not self.enabled:
                utt._finish(cancelled=True)
            elif not utt.text:
                utt._finish()  # nothing to say; an interrupt still silenced the old prompt
            else:
                self._pending.append(utt)
                self._cond.notify_all()
        log.debug("Voice: queued %s interrupt=%s", utt._label(), interrupt)
        return utt

    def stop(self) -> None:
        """Silence now: stop the prompt being spoken and drop the queued ones."""
        with self._cond:
            self._cancel_all_locked()

    def set_rate(self, rate: int) -> None:
        """Words per minute (elder mode speaks slower); used from the next prompt on."""
        self._rate = self._clamp_rate(rate)

    def set_volume(self, volume: float) -> None:
        """Volume 0.0-1.0; used from the next prompt on."""
        self._volume = self._clamp_volume(volume)

    @property
    def rate(self) -> int:
        return self._rate

    @property
    def volume(self) -> float:
        return self._volume

    def set_enabled(self, enabled: bool) -> None:
        """Mute or unmute; muting also silences the current prompt."""
        self.enabled = bool(enabled)
        if not self.enabled:
            self.stop()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or being spoken; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._current is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def busy(self) -> bool:
        """True while a prompt is queued or being spoken."""
        with self._cond:
            return bool(self._pending) or self._current is not None

    @property
    def running(self) -> bool:
        """True while the speaker's own threads are alive (False after close())."""
        eng = self._engine
        return self._worker.is_alive() or (eng is not None and eng.thread.is_alive())

    def close(self) -> None:
        """Drop queued prompts, stop the current one and join the threads; idempotent."""
        with self._cond:
            self._closed = True
            self._cancel_all_locked()
            self._cond.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            # The dispatcher only waits for bounded things (synthesis, a killed player).
            self._worker.join(self.watchdog_s * 2 + 5)
            if self._worker.is_alive():
                log.warning("Voice: speaker thread did not stop within %.0f s",
                            self.watchdog_s * 2 + 5)
        if not self._worker.is_alive():
            self._stop_engine()
            if self._tmpdir:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- set-up -------------------------------------------------------------------------
    @staticmethod
    def _clamp_rate(rate: int) -> int:
        return max(RATE_MIN, min(RATE_MAX, int(rate)))

    @staticmethod
    def _clamp_volume(volume: float) -> float:
        v = float(volume)
        if math.isnan(v):
            raise ValueError("volume must be a number between 0.0 and 1.0")
        return max(0.0, min(1.0, v))

    def _prepare_output(self) -> None:
        if self.output_dir:
            try:
                os.makedirs(self.output_dir, exist_ok=True)
            except OSError as exc:
                raise SpeechError(f"cannot create voice output_dir {self.output_dir}: {exc}")
            return
        if self._player is None:
            for candidate in PLAYERS:
                if shutil.which(candidate[0]):
                    self._player = candidate
                    break
            else:
                raise SpeechError("no audio player found (aplay, paplay or sox play); install "
                                  "alsa-utils, or set voice.output_dir to write WAV files")
        elif not shutil.which(self._player[0]):
            raise SpeechError(f"audio player {self._player[0]!r} not found")
        self._tmpdir = tempfile.mkdtemp(prefix="kiosk-voice-")

    def _start_engine(self) -> _EngineThread:
        """Start an engine thread and wait until its engine exists; SpeechError if not."""
        eng = _EngineThread(next(self._engines), self.voice)
        eng.start()
        if not eng.ready.wait(self.watchdog_s):
            eng.abandon()
            raise SpeechError(f"pyttsx3/espeak-ng did not start within {self.watchdog_s:.0f} s")
        if eng.init_error is not None:
            exc = eng.init_error
            if isinstance(exc, SpeechError):
                raise exc
            raise SpeechError(f"pyttsx3/espeak-ng could not start: {type(exc).__name__}: {exc}"
                              " (are espeak-ng and libespeak-ng1 installed?)")
        self.voice_id = eng.voice_id
        if eng.voice_note:
            self.fault = eng.voice_note
            log.warning("Voice: %s", eng.voice_note)
        return eng

    def _stop_engine(self) -> None:
        eng = self._engine
        if eng is None or not eng.thread.is_alive():
            return
        eng.submit(None)
        eng.thread.join(self.watchdog_s)
        if eng.thread.is_alive():
            log.warning("Voice: speech engine thread did not stop; abandoning it")
            eng.abandon()

    def _restart_engine(self, reason: str) -> None:
        """Watchdog action: discard the engine, make a fresh one, carry on."""
        old = self._engine
        if old is not None:
            old.abandon()
        self.restarts += 1
        log.warning("Voice: %s; discarded the speech engine and started a new one "
                    "(restart %d)", reason, self.restarts)
        try:
            self._engine = self._start_engine()
        except SpeechError as exc:
            self._engine = None
            self.available = False
            self.fault = f"{reason}; restart failed: {exc}"
            log.error("Voice: speech is off: %s", self.fault)

    def _cancel_all_locked(self) -> None:
        while self._pending:
            self._pending.popleft()._finish(cancelled=True)
        if self._current is not None:
            self._current._cancel.set()

    # -- dispatcher thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                utt = self._current = self._pending.popleft()
            try:
                self._speak(utt)
            except Exception as exc:  # the speaker thread must not die
                log.exception("Voice: unexpected failure speaking %s", utt._label())
                utt._finish(error=SpeechError(f"unexpected failure: {exc}"))
            finally:
                with self._cond:
                    self._current = None
                    self._cond.notify_all()

    def _speak(self, utt: Utterance) -> None:
        if utt._cancel.is_set() or not self.enabled:
            utt._finish(cancelled=True)
            return
        eng = self._engine
        if eng is None or not self.available:
            utt._finish(error=SpeechError(f"speech unavailable: {self.fault}"))
            return
        folder = self.output_dir or self._tmpdir
        assert folder is not None
        path = os.path.join(folder, f"voice-{self._token}-{utt.seq:05d}.wav")
        job = _SynthJob(utt.text, path, self._rate, self._volume)
        eng.submit(job)
        if not job.finished.wait(self.watchdog_s):
            self._discard(path)
            reason = (f"speech engine did not finish utterance {utt._label()} "
                      f"within {self.watchdog_s:.0f} s")
            self._restart_engine(reason)
            utt._finish(error=SpeechError(reason))
            return
        if job.error is not None:
            self._discard(path)
            reason = f"speech engine failed: {type(job.error).__name__}: {job.error}"
            self._restart_engine(reason)
            utt._finish(error=SpeechError(reason))
            return
        if utt._cancel.is_set():
            self._discard(path)
            utt._finish(cancelled=True)
            return
        try:
            seconds = _wav_seconds(path)
        except (OSError, EOFError, wave.Error) as exc:
            self._discard(path)
            utt._finish(error=SpeechError(f"speech engine wrote no usable WAV: {exc}"))
            return
        if self.output_dir:
            log.debug("Voice: wrote %s (%.1f s)", utt._label(), seconds)
            utt._finish(path=path)
            return
        try:
            self._play(utt, path, seconds)
        finally:
            self._discard(path)

    def _play(self, utt: Utterance, path: str, seconds: float) -> None:
        assert self._player is not None
        cmd = [*self._player, path]
        with tempfile.TemporaryFile() as errfile:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=errfile,
                                        start_new_session=True)
            except OSError as exc:
                self._play_failed(utt, f"cannot run {cmd[0]}: {exc}")
                return
            deadline = time.monotonic() + seconds + self.watchdog_s
            while proc.poll() is None:
                if utt._cancel.is_set():
                    self._kill(proc)
                    utt._finish(cancelled=True)
                    return
                if time.monotonic() > deadline:
                    self._kill(proc)
                    self._play_failed(utt, f"{cmd[0]} did not finish a {seconds:.1f} s prompt "
                                           f"within {seconds + self.watchdog_s:.0f} s; killed it")
                    return
                try:
                    proc.wait(_POLL_S)
                except subprocess.TimeoutExpired:
                    pass
            if proc.returncode != 0:
                errfile.seek(0)
                lines = errfile.read().decode("utf-8", "replace").strip().splitlines()
                detail = lines[-1] if lines else "no message"
                self._play_failed(utt, f"{cmd[0]} exited with {proc.returncode}: {detail}")
                return
        if self._last_play_error is not None:
            log.info("Voice: playback works again")
            self._last_play_error = None
            if self.fault and self.fault.startswith("playback failed"):
                self.fault = None
        log.debug("Voice: played %s (%.1f s)", utt._label(), seconds)
        utt._finish()

    def _play_failed(self, utt: Utterance, reason: str) -> None:
        # Warn once per distinct problem: a terminal without a sound card fails every prompt.
        if reason != self._last_play_error:
            log.warning("Voice: playback failed: %s", reason)
            self._last_play_error = reason
        else:
            log.debug("Voice: playback failed again: %s", reason)
        self.fault = f"playback failed: {reason}"
        utt._finish(error=SpeechError(reason))

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        """Stop a player and anything it started (its own process group)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(1.0)
                return
            except subprocess.TimeoutExpired:
                continue

    @staticmethod
    def _discard(path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("Voice: could not remove %s: %s", path, exc)
