"""The fleet broker: mosquitto with TLS, one account per terminal, and an ACL that keeps each
terminal inside its own topics.

`BrokerFolder` holds the broker's files (CA, server certificate, password file, ACL,
mosquitto.conf); `python -m fleet` manages it on a real broker host. `Broker` runs a
mosquitto on that folder: the help desk's demo and the tests use it on 127.0.0.1.

The ACL (mosquitto 2 syntax; %u is the account name, which for a terminal is its id)::

    pattern write kiosk/%u/up/#      a terminal publishes only as itself
    pattern read  kiosk/%u/down/#    and reads only its own commands
    user helpdesk
    topic read  kiosk/+/up/#         the console reads every terminal
    topic write kiosk/+/down/#       and commands every terminal
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from fleet.client import FleetAccount
from fleet.pki import make_ca, make_server_cert
from fleet.protocol import check_terminal_id

log = logging.getLogger(__name__)

CONSOLE_USER = "helpdesk"
MOSQUITTO = "mosquitto"
MOSQUITTO_PASSWD = "mosquitto_passwd"
ACL = f"""# written by `python -m fleet`; terminals stay inside their own topics
pattern write kiosk/%u/up/#
pattern read kiosk/%u/down/#

user {CONSOLE_USER}
topic read kiosk/+/up/#
topic write kiosk/+/down/#
"""


class BrokerError(Exception):
    """The broker cannot be set up or started; the message says what to install or fix."""


def _tool(name: str) -> str:
    for folder in (None, "/usr/sbin", "/usr/bin"):
        found = shutil.which(name, path=folder)
        if found:
            return found
    raise BrokerError(f"{name} is not installed: apt-get install mosquitto mosquitto-clients")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BrokerFolder:
    """The broker's files in one owner-only folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def passwd(self) -> Path:
        return self.folder / "passwd"

    @property
    def conf(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def ready(self) -> bool:
        return all(p.exists() for p in (self.ca_file, self.folder / "server.pem", self.passwd, self.conf))

    def init(self, names: list[str], *, listen: str = "0.0.0.0", port: int = 8883,
             run_as: str = "") -> None:
        """CA, server certificate for `names`, empty accounts, ACL and mosquitto.conf. An
        existing CA is kept (terminals already trust it); the server certificate is renewed."""
        if not names:
            raise BrokerError("give at least one name or address terminals use to reach the broker")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        if not (self.folder / "ca.key").exists():
            make_ca(self.folder)
        make_server_cert(self.folder, names)
        if not self.passwd.exists():
            self.passwd.touch(mode=0o600)
        (self.folder / "acl").write_text(ACL, encoding="utf-8")
        self.write_conf(listen, port, run_as)

    def write_conf(self, listen: str, port: int, run_as: str = "") -> None:
        f = self.folder
        lines = [
            "# written by `python -m fleet`: TLS only, accounts only, each terminal in its own topics",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {f / 'passwd'}",
            f"acl_file {f / 'acl'}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 1000",
            f"listener {port} {listen}",
            f"cafile {f / 'ca.pem'}",
            f"certfile {f / 'server.pem'}",
            f"keyfile {f / 'server.key'}",
            "tls_version tlsv1.2",
        ]
        if run_as:  # started as root, mosquitto drops to this user, who must read these files
            lines.insert(1, f"user {run_as}")
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def add_account(self, username: str, password: str | None = None) -> str:
        """Create or replace an account; returns its password (new and random unless given)."""
        if username != CONSOLE_USER:
            check_terminal_id(username)
        password = password or secrets.token_urlsafe(24)
        if not self.passwd.exists():
            raise BrokerError(f"{self.folder} is not a broker folder yet: run `python -m fleet init` first")
        result = subprocess.run([_tool(MOSQUITTO_PASSWD), "-b", str(self.passwd), username, password],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise BrokerError(f"mosquitto_passwd could not add {username}: {result.stderr.strip()}")
        os.chmod(self.passwd, 0o600)
        return password

    def remove_account(self, username: str) -> None:
        result = subprocess.run([_tool(MOSQUITTO_PASSWD), "-D", str(self.passwd), username],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise BrokerError(f"mosquitto_passwd could not remove {username}: {result.stderr.strip()}")

    def accounts(self) -> list[str]:
        if not self.passwd.exists():
            return []
        return [line.split(":", 1)[0] for line in self.passwd.read_text(encoding="utf-8").splitlines() if ":" in line]


class Broker:
    """A mosquitto on a BrokerFolder, started and stopped by us (tests, the demo)."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.files = BrokerFolder(folder)
        self.host = host
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self._console_password = ""

    @property
    def ca_file(self) -> str:
        return str(self.files.ca_file)

    def start(self, timeout_s: float = 20.0) -> Broker:
        if not self.port:
            self.port = _free_port(self.host)
        run_as = "root" if os.geteuid() == 0 else ""  # our files are owner-only: no privilege drop
        if not self.files.ready:
            self.files.init(["localhost", self.host], listen=self.host, port=self.port, run_as=run_as)
        else:
            self.files.write_conf(self.host, self.port, run_as)
        if not self._console_password:  # kept across restarts: a connected console reconnects
            self._console_password = self.files.add_account(CONSOLE_USER)
        with open(self.files.folder / "mosquitto.log", "ab") as log_file:  # the child keeps its own copy
            self.process = subprocess.Popen([_tool(MOSQUITTO), "-c", str(self.files.conf)],
                                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"mosquitto exited at start ({self.process.returncode}): "
                                  f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s:.0f} s")

    def log_tail(self, lines: int = 20) -> str:
        path = self.files.folder / "mosquitto.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def reload(self) -> None:
        """mosquitto rereads its password file and ACL on SIGHUP."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            time.sleep(0.2)  # the reload is asynchronous; give it one scheduling round

    def account(self, username: str, password: str) -> FleetAccount:
        return FleetAccount(self.host, self.port, self.ca_file, username, password)

    def add_terminal(self, terminal_id: str) -> FleetAccount:
        password = self.files.add_account(terminal_id)
        self.reload()
        return self.account(terminal_id, password)

    def console_account(self) -> FleetAccount:
        return self.account(CONSOLE_USER, self._console_password)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
