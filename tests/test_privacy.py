"""One masking function for every log line: ID numbers, phones and the visit's names."""
from __future__ import annotations

import logging

from kiosk import privacy
from kiosk.logsetup import setup_logging


def test_id_and_phone_masked() -> None:
    text = privacy.mask_text("card 11010519491231002X read, phone 13812345678, old 110105491231002")
    assert "11010519491231002X" not in text and "110105********002X" in text
    assert "13812345678" not in text and "138****5678" in text
    assert "110105491231002" not in text


def test_registered_names_masked_until_forgotten() -> None:
    privacy.register_secret("王小明", "北京市东城区某街道1号")
    try:
        out = privacy.mask_text("hello 王小明 at 北京市东城区某街道1号")
        assert "王小明" not in out and "某街道" not in out and "王**" in out
    finally:
        privacy.forget_secret("王小明", "北京市东城区某街道1号")
    assert privacy.mask_text("王小明") == "王小明"


def test_log_file_never_holds_clear_data(tmp_path) -> None:
    log_file = tmp_path / "kiosk.log"
    setup_logging("INFO", log_file, console=False)
    privacy.register_secret("李四")
    try:
        logging.getLogger("x").info("read %s for %s", "11010519491231002X", "李四")
        try:
            raise ValueError("bad card 11010519491231002X")
        except ValueError:
            logging.getLogger("x").exception("failed for %s", "李四")
    finally:
        privacy.forget_secret("李四")
        for h in logging.getLogger().handlers:
            h.flush()
    text = log_file.read_text(encoding="utf-8")
    assert "11010519491231002X" not in text and "李四" not in text
    assert "110105********002X" in text and "ValueError" in text
    setup_logging("INFO", None, console=False)


def test_setup_logging_drops_a_librarys_unfiltered_stderr_handler() -> None:
    """python-escpos calls logging.basicConfig() when imported: its plain stderr handler would
    print every line again, without the privacy filter."""
    import logging

    from kiosk.logsetup import setup_logging

    root = logging.getLogger()
    before = list(root.handlers)
    stray = logging.StreamHandler()
    root.addHandler(stray)
    try:
        setup_logging("INFO", None, console=True)
        assert stray not in root.handlers
        ours = [h for h in root.handlers if getattr(h, "_kiosk", False)]
        assert len(ours) == 1 and all(any(type(f).__name__ == "PrivacyFilter" for f in h.filters) for h in ours)
        assert all(h in root.handlers for h in before if type(h) is not logging.StreamHandler)  # pytest's stay
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_kiosk", False) or handler is stray:
                root.removeHandler(handler)


def test_typed_answers_are_masked_until_the_item_is_dropped() -> None:
    """A typed name has no shape the filter knows: the visit registers every answer but the
    choices, and forgets them with the item (the card's own secrets stay while the card does)."""
    from visit_doubles import Card

    from govplatform.catalogue import load_catalogue
    from kiosk.catalogue import Catalogue
    from kiosk.visit import Step, Visit

    visit = Visit(Catalogue.from_platform(load_catalogue()))
    card = Card()
    visit.start()
    visit.card_read(card)
    visit.browse()
    visit.choose("newborn")
    visit.next()
    assert visit.step is Step.FORM
    visit.correct("baby_name", "张小测")
    visit.correct("applicant_relation", "mother")
    line = privacy.mask_text(f"form: baby 张小测, relation mother, applicant {card.name}")
    assert "张小测" not in line and card.name not in line and "mother" in line, line
    visit.correct("baby_name", "张大测")  # the first spelling stays masked until the item goes
    assert "张小测" not in privacy.mask_text("张小测")
    while visit.step is not Step.CHOOSE:  # back past the item's first step: the item is given up
        visit.back()
    assert privacy.mask_text("张小测 张大测") == "张小测 张大测"
    assert card.name not in privacy.mask_text(card.name), "the card's name was forgotten with the item"
    visit.cancel()
    assert privacy.mask_text(card.name) == card.name
