"""Offline Chinese input: engine load time and time per query. Prints; never asserts.

    .venv/bin/python bench/chinese_input.py            # 200 rounds per query
    .venv/bin/python bench/chinese_input.py -n 50

1. Loading: `InputEngines` on its background thread (as the keyboard starts it), with a
   5 ms ticker on this thread standing in for the UI: the longest gap it saw is how long
   the screen could have stood still while the dictionary loaded. Then the resident
   memory, and how long a full garbage collection takes afterwards.
2. Pinyin: `PinyinEngine.candidates` for words, abbreviations, phrases composed from
   words, and a run of bare initials (the slow case).
3. Handwriting: `HandwritingEngine.recognise` for strokes of 1 to 9 strokes, in Kivy's
   coordinates (the y flip included).
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.chinese_input import InputEngines  # noqa: E402

PINYIN = {
    "word": "beijing",
    "single syllable": "zhang",
    "abbreviation": "sfz",
    "phrase (composed)": "zhengwufuwu",
    "long phrase (composed)": "beijingshidongchengqu",
    "still typing": "shenfenzhengh",
    "bare initials (worst)": "sssssss",
}


def line(x0: float, y0: float, x1: float, y1: float, n: int = 16) -> list[tuple[float, float]]:
    return [(x0 + (x1 - x0) * i / (n - 1), y0 + (y1 - y0) * i / (n - 1)) for i in range(n)]


# y grows upward (Kivy)
STROKES = {
    "一 (1 stroke)": [line(60, 200, 340, 200)],
    "十 (2)": [line(60, 200, 340, 200), line(200, 340, 200, 60)],
    "口 (3)": [line(80, 320, 80, 80), line(80, 320, 320, 320) + line(320, 320, 320, 80)[1:], line(80, 80, 320, 80)],
    "目-like (5)": [line(100, 340, 100, 60), line(100, 340, 300, 340) + line(300, 340, 300, 60)[1:],
                    line(100, 250, 300, 250), line(100, 160, 300, 160), line(100, 60, 300, 60)],
    "9 strokes": [line(40 + 35 * k, 340, 40 + 35 * k, 60) for k in range(9)],
}


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values) * 1000:7.3f} ms  p95 {p95 * 1000:7.3f} ms  max {values[-1] * 1000:7.2f} ms"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith("VmRSS:")) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="rounds per query")
    args = parser.parse_args()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("pinyinIME", "dinkit"))
    print(f"Python {sys.version.split()[0]}; {versions}")

    # -- 1. loading ----------------------------------------------------------------------------
    before = rss_mb()
    source = InputEngines()
    gaps: list[float] = []
    started = time.perf_counter()
    source.start_loading()
    returned = time.perf_counter() - started
    last = time.perf_counter()
    while not source.ready.is_set():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    total = time.perf_counter() - started
    if source.errors():
        print(f"engines failed to load: {source.errors()}")
        return 1
    print("\n1. loading (background thread)")
    print(f"   start_loading() returned in {returned * 1000:.2f} ms; all loaded after {total:.2f} s")
    for kind, seconds in source.load_seconds.items():
        print(f"   {kind:12s} {seconds:6.2f} s")
    print(f"   longest stall of this (UI) thread while loading: {max(gaps, default=0) * 1000:.0f} ms "
          f"(5 ms ticker; gaps > 50 ms: {sum(g > 0.05 for g in gaps)})")
    print(f"   resident memory: +{rss_mb() - before:.0f} MB")
    t = time.perf_counter()
    gc.collect()
    print(f"   a full garbage collection afterwards: {(time.perf_counter() - t) * 1000:.1f} ms")

    # -- 2. pinyin -----------------------------------------------------------------------------
    pinyin = source.pinyin()
    print(f"\n2. pinyin: candidates(letters, 30), {args.n} rounds")
    for name, letters in PINYIN.items():
        times = []
        for _ in range(args.n):
            t = time.perf_counter()
            found = pinyin.candidates(letters)
            times.append(time.perf_counter() - t)
        print(f"   {name:24s} {letters:22s} {ms(times)}  -> {' '.join(found[:4])}")

    # -- 3. handwriting ------------------------------------------------------------------------
    handwriting = source.handwriting()
    print(f"\n3. handwriting: recognise(strokes, 10), {args.n} rounds")
    for name, strokes in STROKES.items():
        times = []
        for _ in range(args.n):
            t = time.perf_counter()
            found = handwriting.recognise(strokes)
            times.append(time.perf_counter() - t)
        print(f"   {name:14s} {ms(times)}  -> {' '.join(found[:5])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
