"""The voice speaker against the real pyttsx3 + espeak-ng (no fakes of the engine).

Prompts are written as WAV files (``output_dir``) so they can be checked without a
sound card. Waits are generous and nothing asserts on wall-clock time: the machine
may be a loaded 2-core box.
"""
from __future__ import annotations

import array
import math
import shutil
import sys
import threading
import wave
from pathlib import Path

import pytest

import voice.speaker as speaker_mod
from voice import Speaker, SpeechError

PROMPT = "请将身份证放在读卡区"
WAIT = 60.0  # seconds; only ever a ceiling, never an expectation


@pytest.fixture
def make_speaker():
    """Build speakers and always close them: espeak-ng allows one live engine per process."""
    made: list[Speaker] = []

    def make(**kwargs: object) -> Speaker:
        s = Speaker(**kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def wav_stats(path: str | Path) -> tuple[float, float, int]:
    """(duration s, RMS, peak) of a 16-bit mono WAV, with the stdlib only."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0, 0.0, 0
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return len(samples) / rate, rms, max(abs(s) for s in samples)


def wav_files(folder: Path) -> set[str]:
    return {str(p) for p in folder.glob("*.wav")}


def test_chinese_prompt_becomes_non_silent_wav(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path)
    assert s.available, s.fault
    u = s.say(PROMPT)
    assert u.wait(WAIT)
    assert u.error is None and not u.cancelled
    assert u.path is not None and Path(u.path).parent == tmp_path
    duration, rms, peak = wav_stats(u.path)
    assert duration > 0.3
    assert rms > 300, f"prompt is (nearly) silent: rms={rms:.0f}"
    assert peak > 3000
    assert u.text == PROMPT and PROMPT not in repr(u)  # repr never shows the text


def test_mandarin_voice_is_selected(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path)
    assert s.voice_id is not None and "cmn-latn-pinyin" in s.voice_id.lower()
    assert s.fault is None


def test_unknown_voice_falls_back_to_mandarin_and_says_so(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path, voice="no-such-voice")
    assert s.available
    assert s.voice_id is not None and "cmn" in s.voice_id.lower()
    assert s.fault is not None and "no-such-voice" in s.fault
    u = s.say(PROMPT)
    assert u.wait(WAIT) and u.error is None and u.path


def test_interrupt_drops_queued_prompts(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path)
    long_text = "请将身份证放在读卡区，" * 12  # slower to synthesise: more stays queued
    queued = [s.say(long_text, interrupt=False, key=f"q{i}") for i in range(6)]
    last = s.say(PROMPT, interrupt=True, key="new-screen")
    assert last.wait(WAIT) and s.wait_idle(WAIT)

    assert last.error is None and not last.cancelled and last.path
    assert wav_stats(last.path)[1] > 300
    for u in queued:
        assert u.done.is_set()
        if u.cancelled:
            assert u.path is None
        else:  # was already spoken before the interrupt arrived
            assert u.error is None and u.path
    assert sum(u.cancelled for u in queued) >= 1
    spoken = {u.path for u in [*queued, last] if u.path}
    assert wav_files(tmp_path) == spoken  # dropped prompts left no file behind


def test_interrupt_stops_the_prompt_being_played(make_speaker) -> None:
    # A player that never ends stands for a long prompt on a real sound card.
    s = make_speaker(player=["sh", "-c", "sleep 300", "player"])
    first = s.say(PROMPT, key="old-screen")
    queued = [s.say(PROMPT, interrupt=False) for _ in range(3)]
    # the first prompt reaches the (endless) player; the others wait behind it
    assert not first.wait(0.5)
    new = s.say(PROMPT, interrupt=True, key="new-screen")
    assert first.wait(WAIT) and first.cancelled
    assert all(u.wait(WAIT) and u.cancelled for u in queued)
    assert not new.wait(0.5)  # now the new prompt is the one being played
    s.stop()
    assert new.wait(WAIT) and new.cancelled and new.error is None
    assert s.wait_idle(WAIT)


def test_hung_player_is_killed_by_the_watchdog(make_speaker) -> None:
    s = make_speaker(player=["sh", "-c", "sleep 300", "player"], watchdog_s=1.0)
    u = s.say(PROMPT)
    assert u.wait(WAIT)
    assert isinstance(u.error, SpeechError) and "did not finish" in str(u.error)
    assert s.wait_idle(WAIT)


def test_disabled_speaker_produces_nothing(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path, enabled=False)
    u = s.say(PROMPT)
    assert u.wait(WAIT) and u.cancelled and u.path is None and u.error is None
    assert s.wait_idle(WAIT)
    assert wav_files(tmp_path) == set()

    s.set_enabled(True)  # and it can be switched back on
    u = s.say(PROMPT)
    assert u.wait(WAIT) and u.path and u.error is None


def test_close_is_idempotent_and_joins_threads(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path)
    assert s.say(PROMPT).wait(WAIT)
    names = {t.name for t in threading.enumerate()}
    assert "voice-speaker" in names
    s.close()
    assert not s.running
    s.close()  # second call: no error, nothing left
    assert not s.running
    assert not any(t.name == "voice-speaker" for t in threading.enumerate())
    u = s.say(PROMPT)
    assert u.done.is_set() and isinstance(u.error, SpeechError)


# pyttsx3 itself reports the injected fault as an exception raised in a ctypes callback.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_watchdog_restarts_engine_and_next_prompt_speaks(make_speaker, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = make_speaker(output_dir=out, watchdog_s=5.0)
    assert s.say(PROMPT).wait(WAIT)
    # Real fault: pyttsx3 cannot write the WAV, raises inside espeak-ng's callback and
    # never reports the utterance finished; its runAndWait() would wait for ever.
    shutil.rmtree(out)
    stuck = s.say(PROMPT)
    assert stuck.wait(WAIT)
    assert isinstance(stuck.error, SpeechError) and stuck.path is None
    # Usually espeak never reports the utterance and the watchdog replaces the engine;
    # sometimes it reports it finished with no file. Either way: an error, then recovery.
    restarts = s.restarts
    assert restarts in (0, 1)

    out.mkdir()
    after = s.say(PROMPT)
    assert after.wait(WAIT)
    assert after.error is None and after.path
    assert wav_stats(after.path)[1] > 300
    assert s.available and s.restarts == restarts


def test_watchdog_replaces_a_hung_engine(make_speaker, monkeypatch, tmp_path: Path) -> None:
    """An engine whose runAndWait never returns is replaced; the next prompt speaks."""
    real_new_engine = speaker_mod._new_engine
    hang = threading.Event()
    engines: list[object] = []

    def new_engine() -> object:
        engine = real_new_engine()
        if not engines:  # the first engine hangs once `hang` is set
            original = engine.runAndWait

            def run_and_wait() -> None:
                if hang.is_set():
                    threading.Event().wait(120)
                else:
                    original()

            engine.runAndWait = run_and_wait
        engines.append(engine)
        return engine

    monkeypatch.setattr(speaker_mod, "_new_engine", new_engine)
    s = make_speaker(output_dir=tmp_path, watchdog_s=2.0)
    assert s.say(PROMPT).wait(WAIT)
    hang.set()
    stuck = s.say(PROMPT)
    assert stuck.wait(WAIT) and isinstance(stuck.error, SpeechError)
    assert s.restarts == 1 and len(engines) == 2
    after = s.say(PROMPT)
    assert after.wait(WAIT) and after.error is None and wav_stats(after.path)[1] > 300


def test_speaker_without_output_dir_does_not_hang(make_speaker) -> None:
    # No sound card here: aplay/sox fail at once (or no player is installed); on a
    # terminal with a sound card this plays. Either way the worker must move on.
    s = make_speaker()
    prompts = [s.say(PROMPT, interrupt=False) for _ in range(2)]
    assert all(u.wait(WAIT) for u in prompts)
    assert s.wait_idle(WAIT)
    for u in prompts:
        assert u.path is None
        if u.error is not None:  # failures are visible, not swallowed
            assert s.fault


def test_engine_that_cannot_start_makes_speech_a_noop(make_speaker, monkeypatch,
                                                      tmp_path: Path, caplog) -> None:
    def broken() -> object:
        raise OSError("libespeak-ng.so.1: cannot open shared object file")

    monkeypatch.setattr(speaker_mod, "_new_engine", broken)
    with caplog.at_level("ERROR", logger="voice.speaker"):
        s = make_speaker(output_dir=tmp_path)
    assert s.available is False
    assert s.fault and "libespeak-ng" in s.fault
    assert sum("speech is off" in r.getMessage() for r in caplog.records) == 1
    u = s.say(PROMPT)
    assert u.done.is_set() and isinstance(u.error, SpeechError)
    assert s.wait_idle(1.0)
    assert wav_files(tmp_path) == set()


def test_spoken_text_is_not_logged_at_info(make_speaker, tmp_path: Path, caplog) -> None:
    with caplog.at_level("DEBUG", logger="voice.speaker"):
        s = make_speaker(output_dir=tmp_path)
        assert s.say(PROMPT, key="idcard.place").wait(WAIT)
        s.close()
    assert not any(PROMPT in r.getMessage() for r in caplog.records)


def test_rate_and_volume_are_clamped(make_speaker, tmp_path: Path) -> None:
    s = make_speaker(output_dir=tmp_path, rate=10, volume=3.0)
    assert s.rate == speaker_mod.RATE_MIN and s.volume == 1.0
    s.set_rate(10_000)
    s.set_volume(-1)
    assert s.rate == speaker_mod.RATE_MAX and s.volume == 0.0
