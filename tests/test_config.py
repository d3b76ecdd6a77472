"""Config: the defaults load; each kind of mistake stops start-up with one clear message."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_config
from config.loader import DEFAULTS_FILE

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "terminal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_and_are_documented() -> None:
    cfg = load_config(environ={})
    assert cfg.ui.language == "zh-CN"
    assert cfg.devices["idcard"].driver == "sam_serial"
    text = DEFAULTS_FILE.read_text(encoding="utf-8")
    # every section has comments explaining it
    assert text.count("#") > 20


def test_terminal_file_then_environment_override(tmp_path: Path) -> None:
    path = write(tmp_path, '[ui]\nwidth = 1024\nlanguage = "en"\n[terminal]\nid = "T-1"\n')
    cfg = load_config(path, environ={"KIOSK__UI__WIDTH": "800", "KIOSK__UI__FULLSCREEN": "false",
                                     "KIOSK__DEVICES__IDCARD__PORT": "/dev/ttyS3"})
    assert cfg.ui.width == 800 and cfg.ui.fullscreen is False
    assert cfg.ui.language == "en" and cfg.terminal.id == "T-1"
    assert cfg.ui.height == 800  # untouched default
    assert cfg.devices["idcard"].driver_params()["port"] == "/dev/ttyS3"


def test_kiosk_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ui]\nwidth = 640\n")
    assert load_config(environ={"KIOSK_CONFIG": str(path)}).ui.width == 640


def test_unknown_key_names_file_key_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "[ui]\nfulscreen = false\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert str(path) in msg and "ui.fulscreen" in msg and "did you mean 'fullscreen'" in msg


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[visit]\nidle_timeout_s = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert str(path) in msg and "visit.idle_timeout_s" in msg and "must be a number" in msg
    assert "'soon'" in msg and "Fix:" in msg


def test_wrong_type_from_environment_names_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"KIOSK__UI__WIDTH": "wide"})
    assert "environment variable KIOSK__UI__WIDTH" in str(err.value)
    assert "ui.width" in str(err.value)


def test_unknown_driver_lists_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[devices.idcard]\ndriver = "acme_usb"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert str(path) in msg and "devices.idcard.driver" in msg and "acme_usb" in msg
    assert "sam_serial" in msg


def test_unknown_device_class(tmp_path: Path) -> None:
    path = write(tmp_path, '[devices.coffee]\nclass = "espresso"\ndriver = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "devices.coffee.class" in str(err.value) and "idcard" in str(err.value)


def test_bad_driver_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, "[devices.idcard]\nbaudrate = \"fast\"\nspeed = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    msg = str(err.value)
    assert "devices.idcard." in msg and str(path) in msg


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[ui\nwidth = \n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "not valid TOML" in str(err.value) and str(path) in str(err.value)


def test_file_not_utf8_says_where_and_to_save_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "terminal.toml"
    path.write_bytes('[terminal]\nlocation = "一楼大厅"\n'.encode("gbk"))  # a Chinese Windows editor's default
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(path) in str(err.value) and "not UTF-8" in str(err.value) and "line 2" in str(err.value)
    assert "save the file as UTF-8" in err.value.fix


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows Notepad's "UTF-8" puts a byte-order mark first; TOML alone would call line 1 invalid."""
    path = tmp_path / "terminal.toml"
    path.write_bytes(b"\xef\xbb\xbf" + '[terminal]\nlocation = "一楼大厅"\n'.encode())
    assert load_config(path, environ={}).terminal.location == "一楼大厅"


def test_trusted_host_the_code_rules_refuse_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[codes]\ne_licence_hosts = ["zwfw.example.gov.cn", "*.gov.cn"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == "codes.e_licence_hosts.1" and err.value.source == str(path)
    assert "'*.gov.cn' is too broad" in str(err.value)


def test_code_rules_across_keys_name_the_section_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[codes]\ne_id_prefixes = ["DZZZ"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == "codes" and err.value.source == str(path)
    assert "prefixes 'DZZZ:' and 'DZZZ' overlap" in str(err.value)  # in their own letter case
    assert "e_licence_hosts" not in str(err.value)  # the problem, not the whole table


def test_trusted_hosts_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, '[codes]\ne_licence_hosts = [" ZWFW.example.gov.cn"]\n')
    assert load_config(path, environ={}).codes.e_licence_hosts == ["zwfw.example.gov.cn"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml", environ={})
    assert "does not exist" in str(err.value)


def test_bad_value_range(tmp_path: Path) -> None:
    path = write(tmp_path, '[ui]\nlanguage = "fr"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "ui.language" in str(err.value) and "zh-CN" in str(err.value)


def test_main_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[ui]\nfulscreen = false\n")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(path), "--headless"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "ui.fulscreen" in lines[0]
