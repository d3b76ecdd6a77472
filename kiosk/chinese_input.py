"""Offline Chinese input for the on-screen keyboard: pinyin and handwriting engines.

Kivy's IME support on Linux is too weak for a kiosk, so the keyboard (screens/keyboard.py)
asks these engines for candidates itself. This module does not import Kivy.

- Pinyin: `pinyinIME` (MIT, dictionary in the wheel) gives word candidates for full and
  abbreviated pinyin (`sfz` -> 身份证); phrases the dictionary lacks (`zhengwufuwu` ->
  政务服务) are composed here from its words by frequency. (`Pinyin2Hanzi` composes as
  well, but parsing its 19 MB of JSON holds the GIL for ~0.8 s, freezing the screen, and
  adds ~45 MB: not used.)
- Handwriting: `dinkit` (MIT, native library and model in the wheel) recognises one
  character from its strokes in 1-2 ms.

The dictionary loads in ~2 s, so the engines load once per process on one daemon thread
(`engines().start_loading()` at start-up); until then the keyboard says "loading".
A missing or broken package becomes `InputEngineUnavailable` with a message for the
technician, never a crash of the kiosk.

No learning from choices: the kiosk is shared, and one citizen's words must not be
offered to the next (pinyinIME's `commit()` is deliberately not used).
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PINYIN_REQUIREMENT = "pinyinIME>=0.2.0,<0.3"
HANDWRITING_REQUIREMENT = "dinkit>=1.3.3,<2"

SEPARATOR = "'"  # typed between syllables to split them by hand: xi'an -> 西安
MAX_LETTERS = 40  # a longer composition is not looked up (the keyboard stops taking letters)
_PREFIX_WORDS = 5  # words offered for each shorter run of leading syllables
_LONGEST_WORD = 7  # syllables; longer dictionary entries are not tried when composing
_LOG_TOTAL = 19.0  # ~log of the dictionary's total frequency: makes scores log-probabilities
_SINGLE_CHARS = 100  # single characters for the first syllable, at most

Stroke = Sequence[tuple[float, float]]


class InputEngineUnavailable(RuntimeError):
    """An input engine cannot be used: still loading (`loading` is True) or it failed to
    load (the message says what to install or reinstall)."""

    def __init__(self, message: str, *, loading: bool = False) -> None:
        super().__init__(message)
        self.loading = loading


def is_hanzi(text: str) -> bool:
    """Only CJK ideographs of the basic plane: what the kiosk's font draws and forms accept.

    Drops the package's emoji, symbols (π), punctuation and rare extension-B characters.
    """
    return bool(text) and all("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"
                              or "\uf900" <= c <= "\ufaff" for c in text)


@dataclass(frozen=True)
class Candidate:
    """A candidate and how many letters of the composition it stands for (the rest stays)."""

    text: str
    consumed: int


@dataclass(frozen=True)
class Segment:
    """One syllable (or initial) of the typed letters."""

    spelling: str
    start: int  # where it is in the typed letters
    end: int
    complete: bool  # a whole syllable, not an initial (abbreviation or still being typed)


# -- pinyin --------------------------------------------------------------------------------
class PinyinEngine:
    """Word and phrase candidates for a string of pinyin letters.

    Built by `InputEngines` (loading takes seconds); queries take well under 1 ms for
    full syllables and up to ~30 ms for long runs of abbreviations.
    """

    def __init__(self, ime: Any, excluded: frozenset[str] = frozenset()) -> None:
        self._ime = ime  # pinyinIME.engine.PinyinEngine
        self._excluded = excluded
        self._lock = threading.Lock()
        # its syllables (private, hence the tight version pin): to split letters better than it does
        self._syllables: frozenset[str] = frozenset(ime._querier._prism.syllables_set())

    @classmethod
    def load(cls) -> PinyinEngine:
        """Load the dictionaries (2-3 s); raises InputEngineUnavailable."""
        try:
            import pinyinIME
            from pinyinIME.engine import PinyinEngine as Ime
        except ImportError as exc:
            raise InputEngineUnavailable(
                f"pinyin input: the Python package pinyinIME is not installed ({exc}); "
                f"install it with: pip install '{PINYIN_REQUIREMENT}'") from exc
        data = Path(pinyinIME.__file__).parent / "data"
        cache = data / ".pinyin_prism_table.pkl"
        if not cache.is_file():
            # the wheel ships only this index; without it pinyinIME would try to rebuild
            # it from dictionary sources it does not ship
            raise InputEngineUnavailable(
                f"pinyin input: pinyinIME's dictionary {cache} is missing; reinstall with: "
                f"pip install --force-reinstall '{PINYIN_REQUIREMENT}'")
        try:
            # (a cache it cannot unpickle is deleted by pinyinIME, which then fails: reinstall)
            ime = Ime(load_emoji=False)
        except Exception as exc:
            raise InputEngineUnavailable(
                f"pinyin input: pinyinIME failed to load its dictionary {cache} ({exc!r}); "
                f"reinstall with: pip install --force-reinstall '{PINYIN_REQUIREMENT}'") from exc
        excluded = _package_phrases(data / "normalized" / "custom_phrase.csv")
        return cls(ime, excluded)

    def candidates(self, letters: str, limit: int = 30) -> list[str]:
        """Candidate texts for `letters`, best first: words, phrases, then shorter words and
        single characters for the leading syllables."""
        return [c.text for c in self.lookup(letters, limit)]

    def lookup(self, letters: str, limit: int = 30) -> list[Candidate]:
        """Like `candidates`, with how many letters each candidate consumes."""
        letters = letters.lower()
        if len(letters) > MAX_LETTERS:
            return []
        segments = self.segment(letters)
        if not segments:
            return []
        found: list[Candidate] = []
        seen: set[str] = set()

        def add(text: str, consumed: int) -> None:
            if text not in seen and is_hanzi(text) and text not in self._excluded:
                seen.add(text)
                found.append(Candidate(text, consumed))

        with self._lock:
            whole = _consumed(letters, segments, len(segments))
            for word, _key, _score in self._ime.lookup(_spell(segments), limit):
                add(word, whole)
            if len(segments) > 1 and all(s.complete for s in segments):
                phrase = self._compose([s.spelling for s in segments])
                if phrase:
                    add(phrase, whole)
            for k in range(len(segments) - 1, 1, -1):
                if all(s.complete for s in segments[:k]):
                    for word, _key, _score in self._ime.lookup(_spell(segments[:k]), _PREFIX_WORDS):
                        add(word, _consumed(letters, segments, k))
            first = _consumed(letters, segments, 1)
            for word, _key, _score in self._ime.lookup(segments[0].spelling, _SINGLE_CHARS):
                if len(word) == 1:
                    add(word, first)
                if len(found) >= limit:
                    break
        return found[:limit]

    def segment(self, letters: str) -> list[Segment]:
        """Split into syllables: fewest incomplete pieces, then fewest pieces, then the
        longest first piece (so xian is 先, not 西安; renmingongheguo is ren-min-gong-...,
        where pinyinIME's greedy split fails)."""
        segments: list[Segment] = []
        start = 0
        for part in letters.split(SEPARATOR):
            segments += self._segment_part(part, start)
            start += len(part) + len(SEPARATOR)
        return segments

    def _segment_part(self, part: str, offset: int) -> list[Segment]:
        n = len(part)
        # best[i] = (incomplete, pieces, segments) for part[i:]
        best: list[tuple[int, int, list[Segment]] | None] = [None] * (n + 1)
        best[n] = (0, 0, [])
        for i in range(n - 1, -1, -1):
            choice: tuple[int, int, list[Segment]] | None = None
            for length in range(min(6, n - i), 0, -1):
                spelling = part[i:i + length]
                rest = best[i + length]
                if rest is None:
                    continue
                if spelling in self._syllables:
                    cost = (rest[0], rest[1] + 1)
                    seg = [Segment(spelling, offset + i, offset + i + length, True)]
                elif length == 1:  # an initial (abbreviation) or a letter no syllable starts with
                    cost = (rest[0] + 1, rest[1] + 1)
                    seg = [Segment(spelling, offset + i, offset + i + 1, False)] if spelling in _INITIALS else []
                else:
                    continue
                if choice is None or cost < choice[:2]:
                    choice = (cost[0], cost[1], seg + rest[2])
            best[i] = choice
        result = best[0]
        return result[2] if result is not None else []

    def _compose(self, syllables: list[str]) -> str | None:
        """The likeliest run of dictionary words for whole syllables (政务 + 服务), by
        word frequency: each word scores log(frequency) - _LOG_TOTAL, the best sum wins."""
        n = len(syllables)
        best: list[tuple[float, str] | None] = [None] * (n + 1)
        best[0] = (0.0, "")
        for end in range(1, n + 1):
            for start in range(max(0, end - _LONGEST_WORD), end):
                before = best[start]
                if before is None:
                    continue
                found = self._ime.lookup(SEPARATOR.join(syllables[start:end]), 1)
                if not found:
                    continue
                word, _key, score = found[0]
                total = before[0] + score / 1_000_000 - _LOG_TOTAL
                if best[end] is None or total > best[end][0]:  # type: ignore[index]
                    best[end] = (total, before[1] + word)
        result = best[n]
        return result[1] if result is not None else None


# pinyinIME's initials that can stand for a syllable (one letter each, as it matches them)
_INITIALS = frozenset("bpmfdtnlgkhjqxzcsrwy")


def _spell(segments: Sequence[Segment]) -> str:
    return SEPARATOR.join(s.spelling for s in segments)


def _consumed(letters: str, segments: Sequence[Segment], count: int) -> int:
    """Letters used by the first `count` segments, with separators right after them."""
    end = segments[count - 1].end
    while end < len(letters) and letters[end] == SEPARATOR:
        end += 1
    return end


def _package_phrases(path: Path) -> frozenset[str]:
    """pinyinIME boosts its author's own phrases (一丹中心, π, ...): not for a kiosk."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    except OSError:
        return frozenset()
    return frozenset(line.split(",")[0].strip() for line in lines if line.strip())


# -- handwriting ---------------------------------------------------------------------------
class HandwritingEngine:
    """One character from its strokes. Not thread-safe natively: calls are serialised."""

    _MAX = 65534  # dinkit takes unsigned 16-bit points; 65535 marks the end of a stroke

    def __init__(self, recognizer: Any) -> None:
        self._recognizer = recognizer  # dinkit.Recognizer, kept for the life of the process
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> HandwritingEngine:
        """Load the native library and model (~20 ms); raises InputEngineUnavailable."""
        try:
            from dinkit import Recognizer
        except ImportError as exc:
            raise InputEngineUnavailable(
                f"handwriting input: the Python package dinkit is not installed ({exc}); "
                f"install it with: pip install '{HANDWRITING_REQUIREMENT}'") from exc
        try:
            # never closed: dinkit's close() and __del__ each dlclose the shared library
            return cls(Recognizer())
        except Exception as exc:
            raise InputEngineUnavailable(
                f"handwriting input: dinkit's native library failed to load ({exc!r}); "
                f"reinstall with: pip install --force-reinstall '{HANDWRITING_REQUIREMENT}'") from exc

    @classmethod
    def to_ink(cls, strokes: Sequence[Stroke]) -> list[list[tuple[int, int]]]:
        """Kivy points (y grows upward) -> dinkit's (y grows downward, >= 0, integers)."""
        points = [p for stroke in strokes for p in stroke]
        if not points:
            return []
        left = min(x for x, _ in points)
        top = max(y for _, y in points)
        return [[(min(cls._MAX, round(x - left)), min(cls._MAX, round(top - y))) for x, y in stroke]
                for stroke in strokes if stroke]

    def recognise(self, strokes: Sequence[Stroke], limit: int = 10) -> list[str]:
        """Candidate characters, best first, for strokes in Kivy coordinates (y up)."""
        return self.recognise_ink(self.to_ink(strokes), limit)

    def recognise_ink(self, ink: list[list[tuple[int, int]]], limit: int = 10) -> list[str]:
        """Candidates for points already in dinkit's coordinates (y down)."""
        if not ink:
            return []
        with self._lock:
            ranked = self._recognizer.recognize(ink, top_k=min(128, 2 * limit + 10))
        found = [c for c in ranked if is_hanzi(c)]
        # dinkit cannot tell shapes that differ only in size (口 and the radical 囗): a rare
        # character moves a few places down, behind common ones the recogniser ranked close
        order = sorted(range(len(found)), key=lambda n: (n + (0 if _common(found[n]) else _RARE_PENALTY),
                                                         not _common(found[n]), n))
        return [found[n] for n in order][:limit]


_RARE_PENALTY = 3  # places


def _common(char: str) -> bool:
    """One of GB 2312's 3755 level-1 characters (the commonly used ones)."""
    try:
        code = char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and 0xB0 <= code[0] <= 0xD7


# -- loading -------------------------------------------------------------------------------
class InputEngines:
    """Both engines, loaded once on one daemon thread; safe to ask from any thread."""

    def __init__(self, *, pinyin_loader: Callable[[], PinyinEngine] = PinyinEngine.load,
                 handwriting_loader: Callable[[], HandwritingEngine] = HandwritingEngine.load) -> None:
        self._loaders = {"handwriting": handwriting_loader, "pinyin": pinyin_loader}  # fast one first
        self._engines: dict[str, Any] = {}
        self._errors: dict[str, InputEngineUnavailable] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set when every engine has loaded or failed
        self.load_count = 0  # loads run (tests: must stay 1)
        self.load_seconds: dict[str, float] = {}
        self.loaded_on: str | None = None  # the loading thread's name

    def start_loading(self) -> None:
        """Start loading in the background; later calls do nothing. Returns at once."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load, name="chinese-input-load", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until loading has finished (loaded or failed); False on timeout."""
        return self.ready.wait(timeout)

    def _load(self) -> None:
        self.load_count += 1
        self.loaded_on = threading.current_thread().name
        # The dictionary is a million small objects. Cyclic GC passes over them while they
        # are being made hold the GIL for up to ~0.2 s each (the screen stops) and make the
        # load 2.5x slower; once loaded, every full collection would scan them again
        # (~0.5 s). So: no collection while loading, then they go to the permanent generation.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for kind, loader in self._loaders.items():
                started = time.perf_counter()
                try:
                    engine = loader()
                except InputEngineUnavailable as exc:
                    self._errors[kind] = exc
                    log.error("%s", exc)
                except Exception as exc:  # a loader bug must not leave the keyboard waiting
                    self._errors[kind] = InputEngineUnavailable(f"{kind} input failed to load: {exc!r}")
                    log.exception("%s input failed to load", kind)
                else:
                    self._engines[kind] = engine
                    self.load_seconds[kind] = time.perf_counter() - started
                    log.info("%s input loaded in %.2f s", kind, self.load_seconds[kind])
        finally:
            # Garbage that exists now would be frozen with the dictionary and never collected:
            # one full collection first (about 0.5 s, once, at start-up), then the freeze.
            gc.collect()
            gc.freeze()
            if collecting:
                gc.enable()
            self.ready.set()

    def _get(self, kind: str) -> Any:
        engine = self._engines.get(kind)
        if engine is not None:
            return engine
        if kind in self._errors:
            raise self._errors[kind]
        if self._thread is None:
            raise InputEngineUnavailable(f"{kind} input: start_loading() was never called", loading=True)
        raise InputEngineUnavailable(f"{kind} input is still loading", loading=True)

    def pinyin(self) -> PinyinEngine:
        """The pinyin engine; raises InputEngineUnavailable while loading or after a failure."""
        return self._get("pinyin")  # type: ignore[no-any-return]

    def handwriting(self) -> HandwritingEngine:
        """The handwriting engine; raises InputEngineUnavailable while loading or after a failure."""
        return self._get("handwriting")  # type: ignore[no-any-return]

    def errors(self) -> dict[str, str]:
        """What failed to load and why (for the technician's status page and logs)."""
        return {kind: str(exc) for kind, exc in self._errors.items()}


_shared: InputEngines | None = None
_shared_lock = threading.Lock()


def engines() -> InputEngines:
    """The process's one InputEngines (not loading until someone calls start_loading())."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = InputEngines()
        return _shared
