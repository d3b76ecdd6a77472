"""`python -m provisioning read-card` as a technician runs it: a subprocess against the real
pcscd of the virtual smart-card bench (tests/conftest.py `pcsc_rig`), with the virtual
social security cards of devices/smartcard/cards and their misbehaviours."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devices.smartcard.emulator import FACTORY
from devices.smartcard.pcscd_rig import PcscdRig
from provisioning import read_card

ROOT = Path(__file__).resolve().parent.parent
ZHANG_SAN = {"id_number": "110101199003070011", "name": "张三", "card_number": "A10000001"}


@pytest.fixture
def bench(pcsc_bench: PcscdRig) -> PcscdRig:
    """The virtual reader tidied before and after (tests/conftest.py)."""
    return pcsc_bench


def insert(bench: PcscdRig, card: str, **behaviour: Any) -> None:
    bench.insert(0, FACTORY, card=card, **behaviour)


def read_card_cmd(bench: PcscdRig, *args: str, socket_option: bool = True) -> subprocess.CompletedProcess[bytes]:
    """The command in a fresh process; pcscd found by --pcsc-socket (or the environment)."""
    env = dict(os.environ)
    if socket_option:
        env.pop("PCSCLITE_CSOCK_NAME", None)
        args = ("--pcsc-socket", bench.socket_path, *args)
    else:
        env["PCSCLITE_CSOCK_NAME"] = bench.socket_path
    return subprocess.run([sys.executable, "-m", "provisioning", "read-card", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=60)


def failure_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The one line the command ends with on stderr (after "insert a card..." if it waited)."""
    assert result.stdout == b""
    err = result.stderr.decode("utf-8")
    assert "Traceback" not in err and err.endswith("\n"), err
    return err.splitlines()[-1]


# -- reading --------------------------------------------------------------------------------------
def test_a_third_generation_card_masked(bench: PcscdRig) -> None:
    insert(bench, "zhang-san")
    result = read_card_cmd(bench, "--timeout", "5")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8")
    for key, value in ZHANG_SAN.items():
        assert value not in out, key
    assert "1990-03-07" not in out
    assert "110101********0011" in out and "张*" in out and "*****0001" in out
    assert "social_security_3" in out and bench.reader_names()[0] in out
    assert "2031-06-01" in out and "北京市 110100" in out  # the card's dates and issuing place in clear
    assert re.search(r"photo +read \(\d+ bytes, JPEG\)", out)
    assert re.search(r"validity +valid\n", out)


def test_a_third_generation_card_in_full_with_json(bench: PcscdRig) -> None:
    insert(bench, "zhang-san")
    result = read_card_cmd(bench, "--json", "--timeout", "5", "--reader", "Virtual PCD 00 00")
    assert result.returncode == 0, result.stderr.decode()
    printed = json.loads(result.stdout.decode("utf-8"))
    assert {k: printed[k] for k in ZHANG_SAN} == ZHANG_SAN
    assert printed["profile"] == "social_security_3" and printed["masked"] is False and printed["validity"] is None
    assert (printed["birth_date"], printed["valid_to"], printed["issuer"]) == ("1990-03-07", "2031-06-01", "北京市 110100")
    assert printed["photo"]["present"] is True and printed["photo"]["format"] == "jpeg"
    assert printed["photo"]["bytes"] > 1000 and "photo_bmp" not in printed
    assert printed["reader"] == "Virtual PCD 00 00"


def test_a_first_generation_card_by_its_profile(bench: PcscdRig) -> None:
    insert(bench, "liu-guizhi-gen1")
    result = read_card_cmd(bench, "--json", "--timeout", "5", socket_option=False)
    assert result.returncode == 0, result.stderr.decode()
    printed = json.loads(result.stdout.decode("utf-8"))
    assert (printed["name"], printed["profile"]) == ("刘桂芝", "social_security_1")
    assert printed["photo"] == {"present": False, "bytes": 0, "format": None}


def test_an_expired_card_is_printed_with_its_problem_and_exits_0(bench: PcscdRig) -> None:
    insert(bench, "zhang-san-expired")
    result = read_card_cmd(bench, "--timeout", "5")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8")
    assert "NOT VALID" in out and "card expired (expired)" in out and "110101199003070011" not in out
    assert "2021-06-01" in out


def test_list_shows_the_readers(bench: PcscdRig) -> None:
    result = read_card_cmd(bench, "--list", socket_option=False)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == bench.reader_names() == ["Virtual PCD 00 00", "Virtual PCD 00 01"]


# -- failures: one line a technician acts on -------------------------------------------------------
def test_no_card_within_the_timeout_exits_2(bench: PcscdRig) -> None:
    result = read_card_cmd(bench, "--timeout", "1", "--json")
    assert result.returncode == 2
    assert "insert a social security card" in result.stderr.decode()
    line = failure_line(result)
    assert "no card in Virtual PCD 00 00 within 1 s" in line


def test_pcscd_stopped_exits_3(bench: PcscdRig) -> None:
    bench.stop_pcscd()
    try:
        result = read_card_cmd(bench, "--timeout", "1")
    finally:
        bench.start_pcscd()
    assert result.returncode == 3
    line = failure_line(result)
    assert "pcscd is not running" in line and "systemctl status pcscd" in line and bench.socket_path in line


def test_an_unknown_reader_exits_3_listing_the_readers(bench: PcscdRig) -> None:
    result = read_card_cmd(bench, "--reader", "ACS ACR39U", "--timeout", "1")
    assert result.returncode == 3
    line = failure_line(result)
    assert "'ACS ACR39U'" in line and "pcscd lists: Virtual PCD 00 00, Virtual PCD 00 01" in line
    assert "USB cable" in line


@pytest.mark.parametrize("card, behaviour, args, words", [
    ("zhang-san", {"wrong_application": True}, [],
     ["this is not a social security card", "tried social_security_3, social_security_2, social_security_1"]),
    ("liu-guizhi-gen1", {}, ["--profile", "social_security_3"],
     ["this is not a social security card", "tried social_security_3;"]),
    ("zhang-san", {"blocked": True}, [], ["blocked (locked)", "6283"]),
    ("zhang-san", {"truncate": {"name": 3}}, [], ["damaged or truncated", "name"]),
    ("zhang-san", {"pull_after": 5}, [], ["pulled out during the read"]),
])
def test_a_card_that_cannot_be_read_exits_4(bench: PcscdRig, card: str, behaviour: dict[str, Any],
                                            args: list[str], words: list[str]) -> None:
    insert(bench, card, **behaviour)
    result = read_card_cmd(bench, "--timeout", "1", *args)
    assert result.returncode == 4, result.stderr.decode()
    line = failure_line(result)
    assert "a card is in Virtual PCD 00 00 but could not be read" in line
    for text in words:
        assert text in line, text
    for value in ZHANG_SAN.values():
        assert value not in line


@pytest.mark.parametrize("args", [["--profile", "social_security_9"], ["--profile", "social_security_common"],
                                  ["--timeout", "-1"]])
def test_bad_arguments_exit_2_with_usage(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "provisioning", "read-card", *args], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("usage:") and "Traceback" not in result.stderr


def test_help_teaches_with_an_example() -> None:
    top = subprocess.run([sys.executable, "-m", "provisioning", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert top.returncode == 0
    assert "read-card" in top.stdout and read_card.EXAMPLE in top.stdout
    assert top.stdout.index("read-id ") < top.stdout.index("read-card ")
    sub = subprocess.run([sys.executable, "-m", "provisioning", "read-card", "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert sub.returncode == 0
    for text in ("examples:", read_card.EXAMPLE, "exit codes:", "--list", "--timeout", "--pcsc-socket",
                 "validity", "never the picture"):
        assert text in sub.stdout, text
