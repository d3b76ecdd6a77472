"""Offline Chinese input (kiosk/chinese_input.py) with the real engines: no Kivy here.

The real dictionary loads once for the whole module (~2 s, on the engines' own thread);
loading rules themselves are checked with stand-in loaders that block on demand.
"""
from __future__ import annotations

import sys
import threading

import pytest

from kiosk.chinese_input import (
    MAX_LETTERS,
    HandwritingEngine,
    InputEngines,
    InputEngineUnavailable,
    PinyinEngine,
    engines,
    is_hanzi,
)


@pytest.fixture(scope="module")
def shared() -> InputEngines:
    shared = engines()
    shared.start_loading()
    shared.start_loading()  # a second caller (another screen): no second load
    assert shared.wait(60), "the input engines did not load within 60 s"
    assert shared.errors() == {}, shared.errors()
    return shared


@pytest.fixture(scope="module")
def pinyin(shared: InputEngines) -> PinyinEngine:
    return shared.pinyin()


@pytest.fixture(scope="module")
def handwriting(shared: InputEngines) -> HandwritingEngine:
    return shared.handwriting()


# -- loading ------------------------------------------------------------------------------------
def test_the_shared_engines_loaded_once_off_the_calling_thread(shared):
    assert shared.load_count == 1
    assert shared.loaded_on == "chinese-input-load" != threading.current_thread().name
    assert engines() is shared
    print(f"load times: {shared.load_seconds}")


class _Gate:
    """A stand-in loader that blocks until released, counting calls and their threads."""

    def __init__(self, result: object) -> None:
        self.result = result
        self.release = threading.Event()
        self.calls: list[str] = []

    def __call__(self) -> object:
        self.calls.append(threading.current_thread().name)
        assert self.release.wait(10)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def test_start_loading_returns_at_once_and_loads_once():
    pinyin_gate, hand_gate = _Gate("pinyin engine"), _Gate("handwriting engine")
    source = InputEngines(pinyin_loader=pinyin_gate, handwriting_loader=hand_gate)  # type: ignore[arg-type]
    with pytest.raises(InputEngineUnavailable) as never:
        source.pinyin()
    assert never.value.loading and "start_loading" in str(never.value)

    source.start_loading()  # returns while the loaders are still blocked
    source.start_loading()
    with pytest.raises(InputEngineUnavailable) as loading:
        source.pinyin()
    assert loading.value.loading
    assert not source.wait(0.05)

    hand_gate.release.set()
    pinyin_gate.release.set()
    assert source.wait(5)
    assert source.pinyin() == "pinyin engine" and source.handwriting() == "handwriting engine"
    assert hand_gate.calls == pinyin_gate.calls == ["chinese-input-load"]
    assert source.load_count == 1


def test_a_failed_engine_says_why_and_the_other_still_works():
    broken = _Gate(InputEngineUnavailable("pinyin input: the Python package pinyinIME is not installed"))
    crashing = _Gate(RuntimeError("model file truncated"))
    broken.release.set()
    crashing.release.set()
    source = InputEngines(pinyin_loader=broken, handwriting_loader=lambda: "hw")  # type: ignore[arg-type,return-value]
    source.start_loading()
    assert source.wait(5)
    with pytest.raises(InputEngineUnavailable) as failed:
        source.pinyin()
    assert not failed.value.loading and "not installed" in str(failed.value)
    assert source.handwriting() == "hw"
    assert set(source.errors()) == {"pinyin"}

    other = InputEngines(pinyin_loader=lambda: "py", handwriting_loader=crashing)  # type: ignore[arg-type,return-value]
    other.start_loading()
    assert other.wait(5)
    with pytest.raises(InputEngineUnavailable, match="model file truncated"):
        other.handwriting()
    assert other.pinyin() == "py"


@pytest.mark.parametrize("module, load", [("pinyinIME", PinyinEngine.load), ("dinkit", HandwritingEngine.load)])
def test_a_missing_package_names_the_fix(monkeypatch, module, load):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # "import module" now raises ImportError
    with pytest.raises(InputEngineUnavailable) as missing:
        load()
    assert not missing.value.loading
    assert "not installed" in str(missing.value) and "pip install" in str(missing.value)


# -- pinyin ---------------------------------------------------------------------------------------
def test_abbreviations(pinyin):
    assert "身份证" in pinyin.candidates("sfz")[:3]


@pytest.mark.parametrize("letters, first", [
    ("beijing", "北京"), ("zhang", "张"), ("shenfenzheng", "身份证"), ("shebao", "社保"),
    ("xi'an", "西安"),  # split by hand
    ("zhangsan", "张三"),
])
def test_words(pinyin, letters, first):
    assert pinyin.candidates(letters)[0] == first


@pytest.mark.parametrize("letters, phrase", [
    ("zhengwufuwu", "政务服务"),  # not one dictionary word: composed from 政务 + 服务
    ("woyaobanlishebao", "我要办理社保"),
    ("beijingshidongchengqu", "北京市东城区"),
    ("renmingongheguo", "人民共和国"),  # pinyinIME's own greedy split (ming-o-n-g) finds nothing
])
def test_phrases(pinyin, letters, phrase):
    assert pinyin.candidates(letters)[0] == phrase


def test_a_candidate_takes_only_its_own_syllables(pinyin):
    found = {c.text: c.consumed for c in pinyin.lookup("beijing", 60)}
    assert found["北京"] == len("beijing")
    assert found["北"] == len("bei")  # picking 北 leaves "jing" to choose next
    after_phrase_words = {c.text: c.consumed for c in pinyin.lookup("zhengwufuwu", 60)}
    assert after_phrase_words["政务"] == len("zhengwu")
    assert {c.text: c.consumed for c in pinyin.lookup("xi'an", 60)}["西"] == len("xi'")


def test_syllables_are_split_sensibly(pinyin):
    def split(letters: str) -> list[str]:
        return [s.spelling for s in pinyin.segment(letters)]

    assert split("xian") == ["xian"]  # 先, not 西安: that needs xi'an
    assert split("xi'an") == ["xi", "an"]
    assert split("fangan") == ["fang", "an"]
    assert split("renmingongheguo") == ["ren", "min", "gong", "he", "guo"]
    assert split("zhangs") == ["zhang", "s"]  # the last syllable still being typed
    assert pinyin.candidates("xian")[0] != "西安"


def test_only_hanzi_and_none_of_the_packages_own_phrases(pinyin):
    for letters in ("pi", "ai", "yidanzhongxin", "ydzx", "dongtaimeijie", "haha", "sfz"):
        found = pinyin.candidates(letters, 60)
        assert all(is_hanzi(c) for c in found), (letters, [c for c in found if not is_hanzi(c)])
    assert "π" not in pinyin.candidates("pi")
    assert "一丹中心" not in pinyin.candidates("yidanzhongxin")


def test_limits_and_nonsense(pinyin):
    assert len(pinyin.candidates("shi", 5)) == 5
    assert len(pinyin.candidates("shi")) == 30
    assert pinyin.candidates("") == []
    assert pinyin.candidates("'''") == []
    assert pinyin.candidates("iiii") == []
    assert pinyin.candidates("a" * (MAX_LETTERS + 1)) == []
    assert pinyin.candidates("BeiJing")[0] == "北京"


# -- handwriting --------------------------------------------------------------------------------
# Strokes as a finger draws them on a Kivy widget: pixels, y growing UPWARD, in writing order.
def line(x0: float, y0: float, x1: float, y1: float, n: int = 12) -> list[tuple[float, float]]:
    return [(x0 + (x1 - x0) * i / (n - 1), y0 + (y1 - y0) * i / (n - 1)) for i in range(n)]


KIVY_STROKES = {
    "一": [line(60, 200, 340, 200)],
    "十": [line(60, 200, 340, 200), line(200, 340, 200, 60)],
    "人": [line(200, 340, 80, 60), line(190, 250, 330, 60)],
    "口": [line(80, 320, 80, 80), line(80, 320, 320, 320) + line(320, 320, 320, 80)[1:], line(80, 80, 320, 80)],
    "大": [line(60, 250, 340, 250), line(200, 350, 200, 250) + line(200, 250, 80, 60)[1:], line(200, 240, 330, 60)],
}


@pytest.mark.parametrize("char", list(KIVY_STROKES))
def test_handwriting_recognises_simple_characters(handwriting, char):
    found = handwriting.recognise(KIVY_STROKES[char])
    assert char in found[:3], found
    assert all(is_hanzi(c) for c in found) and len(found) <= 10


def test_the_y_axis_is_flipped_for_dinkit(handwriting):
    """dinkit expects y growing downward; Kivy's points given as they are come out upside
    down, and the same strokes are then read as other characters."""
    ink = handwriting.to_ink(KIVY_STROKES["人"])
    xs = [x for stroke in ink for x, _ in stroke]
    ys = [y for stroke in ink for _, y in stroke]
    assert min(xs) == 0 and min(ys) == 0 and all(isinstance(v, int) for v in xs + ys)
    assert ink[0][0] == (120, 0)  # the first stroke starts at the top: y 0 on dinkit's page
    for char in ("十", "人", "口"):
        upside_down = [[(round(x), round(y)) for x, y in stroke] for stroke in KIVY_STROKES[char]]
        unflipped = handwriting.recognise_ink(upside_down)
        assert unflipped[:1] != [char], f"{char} was recognised without the flip: {unflipped[:5]}"
        assert char in handwriting.recognise(KIVY_STROKES[char])[:3]


def test_common_characters_come_before_rare_ones_that_look_the_same(handwriting):
    """口 and the radical 囗 differ only in size, which dinkit does not see: 口 comes first."""
    found = handwriting.recognise(KIVY_STROKES["口"])
    assert "口" in found[:3] and "囗" in found
    assert found.index("口") < found.index("囗")


def test_handwriting_edge_cases(handwriting):
    assert handwriting.recognise([]) == []
    assert handwriting.recognise([[]]) == []
    dot = handwriting.recognise([[(10.4, 10.6)]])  # a dot is a stroke too: no crash
    assert isinstance(dot, list)
    far = [[(x + 5000.5, y - 9000.2) for x, y in stroke] for stroke in KIVY_STROKES["十"]]  # off-origin floats
    assert "十" in handwriting.recognise(far)[:3]
    assert len(handwriting.recognise(KIVY_STROKES["十"], limit=3)) == 3
