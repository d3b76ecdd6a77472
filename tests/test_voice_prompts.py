"""What the terminal says and how loud: repeat (重听), the citizen's mute for one visit, and
the quiet hours. The speaker here records instead of speaking (tests/test_voice.py runs the
real one on espeak-ng)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest

from config.loader import load_config
from kiosk.terminal import Terminal
from kiosk.voice_policy import volume_at


@dataclass
class Recorder:
    said: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    volumes: list[float] = field(default_factory=list)
    rates: list[int] = field(default_factory=list)
    stops: int = 0

    def say(self, text: str, *, interrupt: bool = True, key: str | None = None) -> None:
        self.said.append(key or text)
        self.texts.append(text)

    def set_rate(self, rate: int) -> None:
        self.rates.append(rate)

    def stop(self) -> None:
        self.stops += 1

    def set_volume(self, volume: float) -> None:
        self.volumes.append(volume)

    def close(self) -> None:
        pass


# the default terminal has both card readers, so identify asks for either card
IDENTIFY = "identify.prompt_with_ssc"


def terminal(at: datetime.time = datetime.time(10, 0)) -> tuple[Terminal, Recorder]:
    cfg = load_config(environ={"KIOSK__PLATFORM__URL": "", "KIOSK__FACE__ENABLED": "false"})
    speaker = Recorder()
    return Terminal(cfg, speaker=speaker, time_of_day=lambda: at), speaker


def test_repeat_says_the_current_prompt_again() -> None:
    t, spoken = terminal()
    t.visit.start()
    t.visit.repeat()
    t.visit.repeat()
    assert spoken.said == [IDENTIFY] * 3


def test_mute_stops_at_once_lasts_the_visit_and_ends_with_it() -> None:
    t, spoken = terminal()
    t.visit.start()
    t.visit.toggle_voice()
    assert spoken.stops == 1 and t.visit.view().voice_on is False
    t.visit.repeat()
    t.visit.set_language("en")
    assert spoken.said == [IDENTIFY]  # nothing while muted
    t.visit.toggle_voice()
    assert spoken.said == [IDENTIFY, IDENTIFY]  # back on: says where we are
    t.visit.toggle_voice()
    t.visit.cancel()
    assert t.visit.view().voice_on is True  # the next citizen hears the prompts
    t.visit.start()
    assert spoken.said[-1] == IDENTIFY


@pytest.mark.parametrize(("at", "expected"), [(datetime.time(10, 0), 1.0), (datetime.time(23, 30), 0.4),
                                              (datetime.time(6, 59), 0.4), (datetime.time(7, 0), 1.0)])
def test_quiet_hours_lower_the_volume(at: datetime.time, expected: float) -> None:
    t, spoken = terminal(at)
    t.visit.start()
    assert spoken.volumes == [expected]


@pytest.mark.parametrize(("hours", "at", "quiet"), [
    ("22:00-07:00", "21:59", False), ("22:00-07:00", "22:00", True), ("22:00-07:00", "03:00", True),
    ("12:00-13:30", "12:45", True), ("12:00-13:30", "13:30", False), ("", "03:00", False)])
def test_volume_at(hours: str, at: str, quiet: bool) -> None:
    now = datetime.time.fromisoformat(at)
    assert volume_at(now, 0.9, hours, 0.3) == (0.3 if quiet else 0.9)


def test_quiet_hours_setting_is_checked(tmp_path: Any) -> None:
    from config.loader import ConfigError

    with pytest.raises(ConfigError, match="quiet_hours"):
        load_config(environ={"KIOSK__VOICE__QUIET_HOURS": "late at night"})


@dataclass
class Card:
    name: str = "王芳"
    id_number: str = "110101199003071220"
    birth_date: datetime.date = datetime.date(1990, 3, 7)
    card_type: str = "resident"

    def validity_problem(self, _today: Any) -> None:
        return None

    def wipe(self) -> None:
        self.name = self.id_number = ""


def test_every_step_of_the_journey_speaks_its_own_prompt() -> None:
    from kiosk.catalogue import Catalogue

    t, spoken = terminal()
    t.visit.catalogue = Catalogue.from_platform({"version": "v", "items": [{
        "id": "one", "kind": "service", "title": {"zh-CN": "一件事"}, "notice": {"zh-CN": "须知"},
        "form": [{"key": "phone", "label": {"zh-CN": "联系电话"}, "type": "phone", "required": True, "source": ""}],
        "materials": [{"id": "paper", "title": {"zh-CN": "申请表"}, "e_licence": None, "promise_allowed": True,
                       "required": True, "commitment": {"zh-CN": "三十日内补交"}}]}]})
    t.visit.start()
    t.visit.card_read(Card())
    t.visit.browse()
    t.visit.filter_services("all")  # silent: the list changes in front of the citizen
    t.visit.choose("one")
    t.visit.next()
    t.visit.next()  # the phone is still empty: said with the field's name
    t.visit.correct("phone", "13800138000")
    t.visit.next()
    t.visit.promise("paper")
    t.visit.next()
    assert spoken.said == [IDENTIFY, "home.prompt", "choose.prompt", "notice.prompt", "form.prompt",
                           "form.missing", "materials.prompt", "review.prompt"]
    assert "“联系电话”" in spoken.texts[5]


def test_elder_mode_speaks_slower_and_says_so() -> None:
    t, spoken = terminal()
    t.visit.start()
    t.visit.toggle_elder()
    assert spoken.said[-1] == "elder.on" and spoken.rates[-1] == t.cfg.voice.elder_rate
    t.visit.toggle_elder()
    assert spoken.said[-1] == "elder.off" and spoken.rates[-1] == t.cfg.voice.rate
    assert t.cfg.voice.elder_rate < t.cfg.voice.rate


def test_help_without_a_platform_gives_the_hotline_by_voice() -> None:
    t, spoken = terminal()
    t.visit.start()
    t.visit.help()
    t.help_calls.join()
    assert spoken.said[-2:] == ["help.calling", "help.failed"]
    assert t.cfg.ui.help_hotline in spoken.texts[-1]


def test_a_card_left_in_the_reader_is_asked_for_by_voice() -> None:
    t, spoken = terminal()
    t.visit.card_read(Card())
    t.visit.cancel()
    assert spoken.said[-1] == "card.take_back"
