"""`python -m provisioning read-id` as a technician runs it: a subprocess against the
emulator on a pty and on socket://, checked against the card data files."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest

from devices.idcard import protocol as p
from devices.idcard.driver import SamSerialReader
from devices.idcard.emulator import SamEmulator
from devices.idcard.identity import GENDERS, NATIONS, CardDataError, mask_id_number
from provisioning import read_id
from provisioning.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
CARD_FILES = {path.stem: path for path in sorted((ROOT / "devices" / "idcard" / "cards").glob("*.toml"))}
KEYS = ["card_type", "name", "name_en", "gender", "gender_code", "nation", "nation_code", "birth_date", "address",
        "id_number", "issuer", "valid_from", "valid_to", "pass_number", "issue_count", "nationality",
        "id_number_valid", "photo_available"]


def card_data(card_id: str) -> dict[str, Any]:
    with open(CARD_FILES[card_id], "rb") as fh:
        data = tomllib.load(fh)
    data.pop("emulator", None)
    return data


def expected_json(card_id: str) -> dict[str, Any]:
    """What read-id must print for a card, straight from its TOML file."""
    data = card_data(card_id)

    def date(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else value

    return {
        "card_type": data["card_type"],
        "name": data.get("name") or None,
        "name_en": data.get("english_name") or None,
        "gender": GENDERS[data["gender_code"]],
        "gender_code": data["gender_code"],
        "nation": NATIONS[data["nation_code"]] if data.get("nation_code") else None,
        "nation_code": data.get("nation_code") or None,
        "birth_date": date(data["birth_date"]),
        "address": data.get("address") or None,
        "id_number": data["id_number"],
        "issuer": data.get("issuer") or data.get("issuer_code") or None,
        "valid_from": date(data["valid_from"]),
        "valid_to": date(data["valid_to"]),
        "pass_number": data.get("pass_number") or None,
        "issue_count": data.get("issue_count") or None,
        "nationality": data.get("nationality_code") or None,
        "id_number_valid": True,  # every sample card carries a well-formed number
        "photo_available": True,  # run with --photo-decoder emulator
    }


def read_id_cmd(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "provisioning", "read-id", "--port", port, *args],
                          cwd=ROOT, capture_output=True, timeout=timeout)


def one_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8")
    assert "Traceback" not in text
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text


@pytest.fixture(params=["pty", "tcp"])
def emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SamEmulator]:
    options: dict[str, Any] = {"tcp_port": 0} if request.param == "tcp" else {"link": str(tmp_path / "dev" / "idcard")}
    emu = SamEmulator(**options)
    emu.start()
    yield emu
    emu.stop()


def port_of(emulator: SamEmulator) -> str:
    return emulator.link or str(emulator.port)


# -- reading ----------------------------------------------------------------------------------
@pytest.mark.parametrize("card_id", sorted(CARD_FILES))
def test_json_of_every_card_matches_its_data_file(emulator: SamEmulator, card_id: str) -> None:
    emulator.place_card(card_id)
    result = read_id_cmd(port_of(emulator), "--json", "--photo-decoder", "emulator", "--timeout", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    printed = json.loads(result.stdout.decode("utf-8"))
    assert list(printed) == KEYS
    assert printed == expected_json(card_id)


def test_without_a_photo_decoder_the_photo_is_unavailable(emulator: SamEmulator) -> None:
    emulator.place_card("resident")
    result = read_id_cmd(port_of(emulator), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["photo_available"] is False


def test_waits_for_a_card_placed_after_the_start(emulator: SamEmulator) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "provisioning", "read-id", "--port", port_of(emulator),
                             "--timeout", "20", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while emulator.count(p.FIND_CARD) < 2:  # it is looking for a card
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        emulator.place_card("hmt-permit")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["pass_number"] == "H12345678"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("card_id", sorted(CARD_FILES))
def test_summary_without_json_is_masked(tmp_path: Path, card_id: str) -> None:
    with SamEmulator(link=str(tmp_path / "idcard")) as emu:
        emu.place_card(card_id)
        result = read_id_cmd(str(emu.link))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8")
    data = card_data(card_id)
    for key in ("id_number", "name", "english_name", "address", "pass_number", "appended_address"):
        if data.get(key):
            assert data[key] not in out, key
    assert data["birth_date"].isoformat() not in out
    assert mask_id_number(data["id_number"]) in out
    assert data.get("name", "")[:1] + "*" in out
    if data.get("address"):
        assert data["address"][:6] + "…" in out


# -- failures: one line a technician acts on -----------------------------------------------------
def test_no_card_within_the_timeout_exits_2(emulator: SamEmulator) -> None:
    port = port_of(emulator)
    result = read_id_cmd(port, "--timeout", "0.3", "--json")
    assert result.returncode == 2 and result.stdout == b""
    line = one_line(result.stderr)
    assert port in line and "no card" in line


def test_a_missing_port_exits_3(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB-gone")
    result = read_id_cmd(port, "--json")
    assert result.returncode == 3 and result.stdout == b""
    line = one_line(result.stderr)
    assert port in line and "No such file or directory" in line


def test_a_refused_socket_exits_3() -> None:
    with SamEmulator(tcp_port=0) as emu:
        url = str(emu.port)
        emu.unplug()
        result = read_id_cmd(url, "--json")
    assert result.returncode == 3
    line = one_line(result.stderr)
    assert url in line and "Connection refused" in line


def test_a_line_of_garbage_exits_3(emulator: SamEmulator) -> None:
    emulator.place_card("resident")
    emulator.babble()
    port = port_of(emulator)
    result = read_id_cmd(port, "--json", "--timeout", "0.5")
    assert result.returncode == 3 and result.stdout == b""
    line = one_line(result.stderr)
    assert port in line and "SAM protocol" in line and "115200 baud" in line


def test_a_silent_reader_exits_3(emulator: SamEmulator) -> None:
    emulator.set_delay(5.0)
    port = port_of(emulator)
    result = read_id_cmd(port, "--json", "--timeout", "0.5")
    assert result.returncode == 3
    line = one_line(result.stderr)
    assert f"no answer from the SAM module on {port} within 1.0 s" in line


@pytest.mark.parametrize("args", [["--timeout", "-1"], ["--timeout", "soon"], ["--baud", "0"],
                                  ["--photo-decoder", "/nonexistent/libwlt.so"]])
def test_bad_arguments_exit_2_with_usage(args: list[str]) -> None:
    result = read_id_cmd("/dev/ttyUSB0", *args)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("usage:") and "Traceback" not in err


@pytest.mark.parametrize("error", [p.ReadFailed(p.SW3_READ_FAILED, "read text+photo"),
                                   p.UnknownCardType(p.SW3_UNKNOWN_CARD_TYPE, "find card"),
                                   CardDataError("text block field birth is not a YYYYMMDD date")])
def test_a_card_that_cannot_be_read_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], error: Exception) -> None:
    def refuse(self: SamSerialReader, with_fingerprint: bool = False) -> Any:
        raise error

    monkeypatch.setattr(SamSerialReader, "read_card", refuse)
    with SamEmulator(link=str(tmp_path / "idcard")) as emu:
        code = main(["read-id", "--port", str(emu.link), "--timeout", "0.3"])
    captured = capsys.readouterr()
    assert code == read_id.EXIT_CARD_UNREADABLE and captured.out == ""
    assert captured.err.count("\n") == 1 and str(emu.link) in captured.err and "could not be read" in captured.err


def test_help_teaches_each_command_with_an_example() -> None:
    top = subprocess.run([sys.executable, "-m", "provisioning", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert top.returncode == 0
    assert "read-id" in top.stdout and read_id.EXAMPLE in top.stdout
    sub = subprocess.run([sys.executable, "-m", "provisioning", "read-id", "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert sub.returncode == 0
    for text in ("examples:", "exit codes:", "--timeout", "socket://", "id_number_valid"):
        assert text in sub.stdout, text
    missing = subprocess.run([sys.executable, "-m", "provisioning"], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "usage:" in missing.stderr


# -- the mapping ----------------------------------------------------------------------------------
def test_id_number_valid_follows_each_card_types_rules() -> None:
    emu = SamEmulator()
    resident = emu.card("resident")
    assert read_id.id_number_valid(resident)
    resident.id_number = resident.id_number[:-1] + "2"  # wrong check digit
    assert not read_id.id_number_valid(resident)
    old_foreign = emu.card("foreigner-2017")
    assert read_id.id_number_valid(old_foreign)
    old_foreign.id_number = "US1110070010100"  # not 3 letters + 12 digits
    assert not read_id.id_number_valid(old_foreign)
