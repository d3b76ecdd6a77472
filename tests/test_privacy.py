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
