"""A help call answered live by the help desk, as the visit keeps it (no broker here): waiting,
connected, consent, staff messages, pointing, moving the visit, ending by either side, and
what the terminal says at each of them."""
from __future__ import annotations

from typing import Any

import pytest
from visit_doubles import Card, Recorder

from config.loader import load_config
from config.texts import Texts
from govplatform.catalogue import load_catalogue
from kiosk.catalogue import Catalogue
from kiosk.terminal import Terminal
from kiosk.visit import HelpNotAllowed, InvalidTransition, Step, View, Visit
from kiosk.visit_workers import HelpCalls


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.from_platform(load_catalogue())


@pytest.fixture
def visit(catalogue: Catalogue) -> Visit:
    return Visit(catalogue)


def connected(visit: Visit, call_id: str = "call-1") -> list[View]:
    """The citizen asked for help and staff took the call; returns every view from then on."""
    views: list[View] = []
    visit.subscribe(views.append)
    visit.help()
    assert visit.help_waiting(visit.session.visit_id, call_id)
    assert visit.help_connected(call_id, "李娜")
    return views


def on_form(visit: Visit) -> None:
    visit.start()
    visit.card_read(Card())
    visit.browse()
    visit.choose("newborn")
    visit.next()
    assert visit.step is Step.FORM


def test_waiting_then_connected_and_answers_for_others_are_ignored(visit: Visit) -> None:
    views: list[View] = []
    visit.subscribe(views.append)
    visit.help()
    assert visit.view().help.state == "calling"
    assert not visit.help_waiting("another-visit", "call-1")
    assert not visit.help_waiting(visit.session.visit_id, "")
    assert visit.help_waiting(visit.session.visit_id, "call-1")
    call = visit.view().help
    assert (call.state, call.call_id, call.consent) == ("waiting", "call-1", "")
    assert not visit.help_connected("call-2", "李娜")
    assert visit.help_connected("call-1", "李娜")
    call = visit.view().help
    assert (call.state, call.staff, call.consent, call.minimized) == ("connected", "李娜", "asked", False)
    assert [v.reason for v in views] == ["help", "help_waiting", "help_connected"]
    visit.help()  # pressed again during the call: the same call, nothing new
    assert visit.view().help.call_id == "call-1" and views[-1].reason == "help_again"


def test_messages_pointer_and_consent(visit: Visit) -> None:
    views = connected(visit)
    for n in range(7):
        assert visit.help_message("call-1", f"第{n}条")
    assert visit.view().help.messages == tuple(f"第{n}条" for n in range(2, 7))  # the last five, oldest first
    assert not visit.help_message("call-9", "不是这个通话")
    assert visit.help_pointer("call-1", 0.25, 0.75) and visit.help_pointer("call-1", 1.5, -1)
    assert visit.view().help.pointer == (1.0, 0.0, 2)  # clamped; the number grows with every point
    visit.give_consent(True)
    assert visit.view().help.consent == "granted"
    assert visit.ask_consent("call-1") and visit.view().help.consent == "asked"
    visit.give_consent(False)
    assert visit.view().help.consent == "refused" and views[-1].reason == "help_consent"


def test_fold_reopen_and_end_by_the_citizen(visit: Visit) -> None:
    views = connected(visit)
    visit.minimize_help()
    assert visit.view().help.minimized and visit.view().help.state == "connected"
    assert visit.help_message("call-1", "还在")  # the call goes on while folded
    visit.help()  # the folded bar touched: the panel opens again
    assert not visit.view().help.minimized and views[-1].reason == "help_again"
    visit.end_help()
    assert visit.view().help.state == "ended" and views[-1].reason == "help_ended_by_citizen"
    assert not visit.help_message("call-1", "太迟了") and not visit.help_ended("call-1", "staff")
    with pytest.raises(InvalidTransition):
        visit.end_help()
    with pytest.raises(InvalidTransition):
        visit.give_consent(True)
    with pytest.raises(InvalidTransition):
        visit.minimize_help()
    visit.close_help()
    assert visit.view().help is None
    visit.help()  # a new call after the last one ended
    assert visit.view().help.state == "calling"


def test_ended_by_staff_and_wiped_with_the_visit(visit: Visit) -> None:
    views = connected(visit)
    visit.minimize_help()
    assert visit.help_pointer("call-1", 0.5, 0.5)
    assert visit.help_ended("call-1", "staff")
    call = visit.view().help
    assert call.state == "ended" and not call.minimized and call.pointer is None and views[-1].reason == "help_ended"
    visit.close_help()
    on_form(visit)
    connected(visit, "call-2")
    visit.cancel()
    assert visit.view().help is None
    assert not visit.help_message("call-2", "人走了")
    assert not visit.help_waiting(visit.session.visit_id, "call-3")  # no call asked for in this visit


def test_goto_allows_home_choose_and_reached_item_steps_only(visit: Visit) -> None:
    connected(visit)
    with pytest.raises(HelpNotAllowed, match="identified"):
        visit.help_goto("call-1", Step.HOME)  # nobody identified on the attract screen
    visit.close_help()
    on_form(visit)
    connected(visit)
    assert not visit.help_goto("call-9", Step.HOME)  # another call: ignored
    with pytest.raises(HelpNotAllowed, match="not reached"):
        visit.help_goto("call-1", Step.REVIEW)
    with pytest.raises(HelpNotAllowed):
        visit.help_goto("call-1", Step.FINISH)
    assert visit.help_goto("call-1", Step.NOTICE) and visit.step is Step.NOTICE
    assert visit.help_goto("call-1", Step.FORM) and visit.step is Step.FORM  # reached before
    assert visit.session.answers  # the item's answers are kept
    assert visit.help_goto("call-1", Step.CHOOSE) and visit.step is Step.CHOOSE
    assert visit.session.service_id is None and not visit.session.answers  # the item was given up
    with pytest.raises(HelpNotAllowed):
        visit.help_goto("call-1", Step.FORM)  # no item chosen now
    assert visit.help_goto("call-1", Step.HOME) and visit.step is Step.HOME
    visit.choose("newborn")  # the same item again: nothing counts as reached from before
    with pytest.raises(HelpNotAllowed, match="not reached"):
        visit.help_goto("call-1", Step.FORM)
    assert visit.view().help.state == "connected"


def test_help_goes_to_the_desk_when_the_fleet_takes_it() -> None:
    class Fleet:
        def __init__(self, takes: bool) -> None:
            self.takes, self.offers = takes, []

        def offer_help(self, visit_id: str) -> bool:
            self.offers.append(visit_id)
            return self.takes

    class Link:
        enrolled = True

        def call_help(self, *_args: Any) -> tuple[str, str]:
            return "ZX20261127000001", "12345"

    for takes, state in ((True, "calling"), (False, "called")):
        visit = Visit(Catalogue([]))
        fleet = Fleet(takes)
        calls = HelpCalls(visit, Link(), "12345", fleet)
        visit.subscribe(calls.on_view)
        visit.help()
        calls.join()
        assert fleet.offers == [visit.session.visit_id] and visit.view().help.state == state


def test_the_terminal_says_each_step_of_the_call_and_speaks_staff_messages() -> None:
    cfg = load_config(environ={"KIOSK__PLATFORM__URL": '""', "KIOSK__FACE__ENABLED": "false"})
    speaker = Recorder()
    terminal = Terminal(cfg, speaker=speaker)
    visit = terminal.visit

    class Desk:  # the fleet agent takes the call; the test plays its part below
        def offer_help(self, _visit_id: str) -> bool:
            return True

    terminal.help_calls.fleet = Desk()
    visit.help()
    terminal.help_calls.join()
    assert visit.help_waiting(visit.session.visit_id, "call-1")
    assert visit.help_connected("call-1", "李娜")
    assert visit.help_message("call-1", "请点击下一步")
    assert visit.help_pointer("call-1", 0.9, 0.9)
    visit.give_consent(True)
    visit.minimize_help()  # silent
    assert visit.help_ended("call-1", "staff")
    assert speaker.said == ["help.calling", "help.waiting", "help.connected", "help.message", "help.pointer_hint",
                            "help.consent_granted", "help.ended"]
    assert speaker.texts[2] == "客服 李娜 已接通，正在为您服务。" and speaker.texts[3] == "请点击下一步"


def test_every_help_text_is_there_in_both_languages() -> None:
    texts = Texts.load()
    keys = ["help.waiting", "help.connected", "help.ended", "help.end", "help.minimize", "help.consent_title",
            "help.consent_text", "help.consent_yes", "help.consent_no", "help.consent_granted",
            "help.consent_refused", "help.message_from", "help.pointer_hint"]
    for key in keys:
        for language in ("zh-CN", "en"):
            text = texts.get(key, language, staff="李娜")
            assert text and "{" not in text, (key, language)
    assert texts.get("help.consent_yes") == "显示我的信息" and texts.get("help.end") == "结束求助"
    assert texts.get("help.minimize") == "收起" and texts.get("help.consent_no") == "不显示"
