"""Fuzzing the files a technician (or a careless editor) writes: the terminal's configuration
(config/loader.py: TOML file, KIOSK__ environment variables), card profiles
(devices/smartcard/profiles), the emulators' card files (ID card and social security
card) and scenario files (kiosk/scenario.py).

Each file is the repository's own, with a few values replaced by any TOML value (the wrong
type, an empty text, a huge number, a date, a table), unknown keys added, or raw bytes in
place of the file. The documented outcome is the one error type each loader names (the
one message a technician reads), and a file that loads must be usable by what reads it
next: the terminal's code rules and device drivers, a profile reading a card.
"""
from __future__ import annotations

import copy
import datetime as dt
import functools
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st

from config.loader import DEFAULTS_FILE, ConfigError, load_config
from devices import registry
from devices.base import DeviceError
from devices.idcard.emulator import CARDS_DIR as ID_CARDS_DIR
from devices.idcard.emulator import load_card as load_id_card
from devices.idcard.identity import IdentityCard
from devices.smartcard.card_emulator import CARDS_DIR as SS_CARDS_DIR
from devices.smartcard.card_emulator import CardEngine, CardFileError
from devices.smartcard.card_emulator import load_card as load_ss_card
from devices.smartcard.profile import PROFILES_DIR, Profile, ProfileError, load_profile, read_card_data
from kiosk.codes import CodeRules
from kiosk.scenario import Scenario, ScenarioError

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

scalars = st.one_of(
    st.text(max_size=12), st.sampled_from(["", " ", "0", "-1", "none", "/dev/null", "*.gov.cn", "hex", "\r"]),
    st.integers(-2**63, 2**63 - 1), st.sampled_from([0, -1, 1, 65536, 2**31]),
    st.floats(allow_nan=True), st.booleans(),
    st.dates(), st.datetimes(), st.times(),
)
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _leaves(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Key paths of every value in a parsed TOML document (tables and list items included)."""
    out = [at] if at else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, at + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, at + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any], sparse: bool = False) -> dict[str, Any]:
    """`document` with up to four values replaced, removed or given a sibling of any kind; with
    `sparse`, only the touched keys are kept (a terminal file on top of the defaults)."""
    paths = _leaves(document)
    out: dict[str, Any] = {} if sparse else copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["similar", "similar", "replace", "replace", "drop", "sibling"]))
        node: Any = out
        try:
            for key in at[:-1]:
                if sparse and isinstance(node, dict):
                    node = node.setdefault(key, {} if not isinstance(key, int) else [])
                else:
                    node = node[key]
            if action == "drop" and not sparse:
                del node[at[-1]]
            elif action == "similar" and isinstance(node, dict):
                node[at[-1]] = draw(_like(_at(document, at)))
            elif action == "sibling" and isinstance(node, dict):
                node[draw(st.text(min_size=1, max_size=8))] = draw(toml_values)
            elif isinstance(node, dict):
                node[at[-1]] = draw(toml_values)
            elif isinstance(node, list) and isinstance(at[-1], int) and at[-1] < len(node):
                node[at[-1]] = draw(scalars)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit changed that part
    return out


def _at(document: Any, at: tuple[Any, ...]) -> Any:
    return functools.reduce(lambda node, key: node[key], at, document)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same TOML type: most mistakes keep the type and get the value wrong."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-10, 10) | st.integers(-2**40, 2**40)
    if isinstance(value, float):
        return st.floats(-1e6, 1e6) | st.sampled_from([0.0, -0.0, 1e-9, 1e308])
    if isinstance(value, str):
        return st.text(max_size=12) | st.sampled_from(["", value.upper(), value + "x", value[:1]])
    if isinstance(value, list):
        return st.lists(_like(value[0]) if value else scalars, max_size=3)
    return toml_values


def _write(path: Path, document: dict[str, Any]) -> Path | None:
    try:
        path.write_text(tomli_w.dumps(document), encoding="utf-8")
    except (TypeError, ValueError):  # not expressible in TOML (a key path through a list, ...)
        return None
    return path


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz-config-"))


@functools.cache
def _defaults() -> dict[str, Any]:
    return tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))


def _terminal_file(document: dict[str, Any]) -> Path | None:
    document = copy.deepcopy(document)
    document.setdefault("terminal", {})
    if isinstance(document["terminal"], dict):
        document["terminal"].setdefault("data_dir", str(_workdir() / "data"))
    return _write(_workdir() / "terminal.toml", document)


# -- the terminal's configuration -------------------------------------------------------------------------------
@fuzz(120)
@given(mutated(_defaults(), sparse=True))
def test_a_terminal_file_loads_or_gives_the_one_config_error(document: dict[str, Any]) -> None:
    path = _terminal_file(document)
    if path is None:
        return
    try:
        cfg = load_config(path, environ={})
    except ConfigError as exc:
        event("ConfigError")
        assert exc.source and exc.fix and "configuration error" in str(exc)
        return
    event("loaded")
    for name, dev in cfg.devices.items():  # what Terminal.start does, short of opening
        if dev.enabled:
            registry.driver_class(dev.device_class, dev.driver)(name, **dev.driver_params())


@example({"KIOSK__UI__WIDTH": "[1, 2"})
@fuzz(120)
@given(st.dictionaries(
    st.lists(st.sampled_from(["UI", "ui", "VISIT", "DEVICES", "QR_SCANNER", "PORT", "WIDTH", "X", "", "CODES",
                              "E_LICENCE_HOSTS", "TERMINAL", "ID"]), min_size=1, max_size=4).map(
        lambda parts: "KIOSK__" + "__".join(parts)),
    st.one_of(st.text(max_size=20), st.sampled_from(["1", "true", "[1, 2", "\"x\"", "{a = 1}", "1e999", "nan",
                                                     "[\"a\", 1]", "1\nw = 2", "\"\\u0000\""])),
    max_size=4))
def test_environment_variables_load_or_give_the_one_config_error(environ: dict[str, str]) -> None:
    path = _terminal_file({})
    try:
        load_config(path, environ=environ)
    except ConfigError as exc:
        event("ConfigError")
        assert "configuration error" in str(exc)
    else:
        event("loaded")


@example("gbk", "[terminal]\nlocation = \"一楼大厅\"\n".encode("gbk"))
@fuzz(100)
@given(st.just("bytes"), st.binary(max_size=120))
def test_a_terminal_file_of_any_bytes_gives_the_one_config_error(_kind: str, data: bytes) -> None:
    """tomllib decodes the file as UTF-8 before parsing: a file saved as GBK (a Chinese Windows
    editor's default) must give the one ConfigError telling to save it as UTF-8, not a traceback."""
    path = _workdir() / "terminal.toml"
    path.write_bytes(data)
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert str(path) in exc.source and exc.fix
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            event("not UTF-8")
            assert "UTF-8" in str(exc) and "line " in exc.problem


@example(["*.gov.cn"], [])
@example(["zwfw.example.gov.cn"], ["ZWFW.example.gov.cn"])
@fuzz(100)
@given(st.lists(st.sampled_from(["zwfw.example.gov.cn", "*.example.gov.cn", "*.gov.cn", "*.cn", "localhost",
                                 "1.2.3.4", "a b", "", "xn--fiq228c.example.cn", "EXAMPLE.GOV.CN"]), max_size=3),
       st.lists(st.sampled_from(["ctid.example.gov.cn", "*.gov.cn", "a b", "zwfw.example.gov.cn"]), max_size=2))
def test_code_rules_a_config_accepts_are_usable(hosts: list[str], e_id_hosts: list[str]) -> None:
    """CodeRules (built by CheckIn in Terminal.__init__) refuses malformed or too broad hosts
    ('*.gov.cn'): config load must refuse them first, with a ConfigError naming [codes]."""
    path = _terminal_file({"codes": {"e_licence_hosts": hosts, "e_id_hosts": e_id_hosts}})
    try:
        cfg = load_config(path, environ={})
    except ConfigError as exc:
        event("ConfigError")
        assert exc.key.startswith("codes") and exc.source == str(path)
        with pytest.raises(ValueError):
            CodeRules(e_licence_hosts=tuple(hosts), e_id_hosts=tuple(e_id_hosts))
        return
    event("loaded")
    CodeRules.from_mapping(cfg.codes.model_dump())


CAMERA_DEVICES = ({"class": "scanner", "driver": "document_camera"}, {"class": "qr_scanner", "driver": "camera"},
                  {"class": "camera", "driver": "opencv"})


@pytest.mark.parametrize("device", CAMERA_DEVICES)
@pytest.mark.parametrize("source", [-1, " ", ""])
def test_a_camera_source_the_camera_would_refuse_is_a_config_error(device: dict[str, str], source: Any) -> None:
    """Found by bench/fuzz_long.py: every driver that builds an OpenCvCamera checks `source` as it
    does (devices/camera/driver.py CameraSource), so load_config refuses it, not Terminal.start."""
    path = _terminal_file({"devices": {"fuzzcam": {**device, "source": source}}})
    assert path is not None
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == "devices.fuzzcam.source" and err.value.source == str(path)


@pytest.mark.parametrize("device", CAMERA_DEVICES)
@pytest.mark.parametrize("source", [0, " 2 ", "/dev/video0", "rtsp://cam.local/stream"])
def test_a_camera_device_the_config_accepts_can_be_built(device: dict[str, str], source: Any) -> None:
    path = _terminal_file({"devices": {"fuzzcam": {**device, "source": source}}})
    assert path is not None
    cfg = load_config(path, environ={})
    dev = cfg.devices["fuzzcam"]
    registry.driver_class(dev.device_class, dev.driver)("fuzzcam", **dev.driver_params())


@functools.cache
def _documents(directory: Path) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((p.stem, tomllib.loads(p.read_text(encoding="utf-8"))) for p in sorted(directory.glob("*.toml")))


# -- card profiles -------------------------------------------------------------------------------------------------
PROFILES = ("social_security_common", "social_security_1", "social_security_2", "social_security_3")


@functools.cache
def _profile_document(name: str) -> dict[str, Any]:
    return tomllib.loads((PROFILES_DIR / f"{name}.toml").read_text(encoding="utf-8"))


def _profile_dir(name: str, document: dict[str, Any]) -> Path | None:
    directory = _workdir() / "profiles"
    directory.mkdir(exist_ok=True)
    for other in PROFILES:
        (directory / f"{other}.toml").write_text((PROFILES_DIR / f"{other}.toml").read_text(encoding="utf-8"),
                                                 encoding="utf-8")
    return directory if _write(directory / f"{name}.toml", document) else None


@functools.cache
def _zhang_san() -> CardEngine:
    return load_ss_card("zhang-san")


@example(("social_security_2", {**_profile_document("social_security_2"), "title": "x"}))
@example(("social_security_2", {**_profile_document("social_security_2"), "field": [1]}))
@example(("social_security_3", {**_profile_document("social_security_3"), "photo": {"select": "EF08"}}))
@example(("social_security_1", {**_profile_document("social_security_1"), "extends": "social_security_1"}))
@fuzz(200)
@given(st.sampled_from(PROFILES).flatmap(lambda n: st.tuples(st.just(n), mutated(_profile_document(n)))))
def test_a_card_profile_loads_or_gives_a_profile_error(case: tuple[str, dict[str, Any]]) -> None:
    name, document = case
    directory = _profile_dir(name, document)
    if directory is None:
        return
    try:
        profile = load_profile(name, directory)
    except ProfileError as exc:  # was TypeError/ValueError/AttributeError before load_profile checked types
        event("ProfileError")
        assert name in str(exc) or "profile" in str(exc)
        return
    event("loaded")
    assert isinstance(profile, Profile)


@example(("social_security_3", "record", 300))
@example(("social_security_3", "length", "18"))
@example(("social_security_3", "sfi", 31))
@fuzz(100)
@given(st.tuples(st.sampled_from(["social_security_3"]), st.sampled_from(["record", "sfi", "tag", "length"]),
                 st.one_of(st.integers(-1, 70000), st.sampled_from(["18", "EF", "0x10", ""]))))
def test_a_card_profile_that_loads_reads_cards_with_device_errors_only(case: tuple[str, str, Any]) -> None:
    name, key, value = case
    document = copy.deepcopy(_profile_document(name))
    document["field"][0][key] = value
    directory = _profile_dir(name, document)
    assert directory is not None
    try:
        profile = load_profile(name, directory)
    except ProfileError as exc:  # refused when the terminal starts, naming the file and the key
        assert f"{name}.toml" in str(exc) and key in str(exc)
        return
    engine = _zhang_san()
    engine.reset()
    try:
        read_card_data(engine.respond, profile)
    except DeviceError:
        pass


# -- the emulators' card files and scenario files ----------------------------------------------------------------
@example(("resident", {**dict(_documents(ID_CARDS_DIR))["resident"], "name": 5}))
@example(("resident", {**dict(_documents(ID_CARDS_DIR))["resident"], "emulator": 1}))
@fuzz(150)
@given(st.sampled_from(_documents(ID_CARDS_DIR)).flatmap(
    lambda d: st.tuples(st.just(d[0]), mutated(d[1]))))
def test_an_id_card_file_loads_or_gives_a_value_error(case: tuple[str, dict[str, Any]]) -> None:
    stem, document = case
    path = _write(_workdir() / f"{stem}.toml", document)
    if path is None:
        return
    try:
        card = load_id_card(path)
    except ValueError as exc:  # was AttributeError for name = 5: now every refusal names the file
        assert path.name in str(exc)
        return
    assert isinstance(card, IdentityCard)


@example(("zhang-san", {"holder": [1]}))
@example(("zhang-san", {"emulator": 1}))
@example(("zhang-san", {**dict(_documents(SS_CARDS_DIR))["zhang-san"], "profile": "nobody"}))
@fuzz(150)
@given(st.sampled_from(_documents(SS_CARDS_DIR)).flatmap(lambda d: st.tuples(st.just(d[0]), mutated(d[1]))))
def test_a_social_security_card_file_loads_or_gives_a_value_error(case: tuple[str, dict[str, Any]]) -> None:
    stem, document = case
    if isinstance(document.get("emulator"), dict):  # the face photo is cut by a face detector: slow, not a parser
        document.pop("emulator")
    path = _write(_workdir() / f"{stem}.toml", document)
    if path is None:
        return
    try:
        engine = load_ss_card(path)
    except CardFileError as exc:  # was AttributeError for holder = [1]: now one type, naming the file
        assert stem in str(exc)
        event("refused")
        return
    event("loaded")
    engine.respond(bytes.fromhex("00A4040000"))


@example(("resident_visit", {"steps": [1]}))
@fuzz(150)
@given(st.sampled_from(_documents(SCENARIOS_DIR)).flatmap(lambda d: st.tuples(st.just(d[0]), mutated(d[1]))))
def test_a_scenario_file_loads_or_gives_a_scenario_error(case: tuple[str, dict[str, Any]]) -> None:
    stem, document = case
    path = _write(_workdir() / f"{stem}.toml", document)
    if path is None:
        return
    try:
        scenario = Scenario.load(path)
    except ScenarioError:
        return
    assert scenario.steps and isinstance(scenario.name, str)
    assert all(isinstance(step, dict) for step in scenario.steps)


@example("[[steps]]\ndo = \"press\"\nbutton = \"start\"\nname = \"一楼大厅\"\n".encode("gbk"))
@fuzz(100)
@given(st.binary(max_size=120))
def test_a_scenario_file_of_any_bytes_loads_or_gives_a_scenario_error(data: bytes) -> None:
    """A scenario saved as GBK (not UTF-8) is a ScenarioError saying so, not a UnicodeDecodeError."""
    path = _workdir() / "bytes_scenario.toml"
    path.write_bytes(data)
    try:
        Scenario.load(path)
    except ScenarioError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            assert "UTF-8" in str(exc)


def test_dates_in_card_files_stay_dates() -> None:
    """A sanity check of the strategy: tomli_w writes what tomllib reads back."""
    document = {"a": dt.date(2020, 1, 2), "b": [1, "x"], "c": {"d": 1.5}}
    assert tomllib.loads(tomli_w.dumps(document)) == document
