"""One way to open an MQTT connection to the fleet broker, for terminals and the console alike:
MQTT 5, TLS that verifies the broker against the fleet's own CA, the account's credentials.
"""
from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt


class FleetAccountError(Exception):
    """A broker account cannot be used: its password file is missing, empty or readable by others."""


@dataclass(frozen=True)
class FleetAccount:
    """Where the broker is and who we are there. `repr` never shows the password."""

    host: str
    port: int
    ca_file: str
    username: str
    password: str
    server_name: str = ""  # the name in the broker's certificate, when it differs from host

    def __repr__(self) -> str:
        return f"FleetAccount({self.username}@{self.host}:{self.port}, ca={self.ca_file})"


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The one line of an owner-only password file."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise FleetAccountError(f"the broker password file {file} does not exist: run "
                                "`python -m fleet add-terminal` on the broker and copy its password file here") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise FleetAccountError(f"the broker password file {file} is readable by other users: chmod 600 {file}")
    password = file.read_text(encoding="utf-8").strip()
    if not password:
        raise FleetAccountError(f"the broker password file {file} is empty")
    return password


class _NamedContext(ssl.SSLContext):
    """Checks the broker's certificate against a fixed name: a broker reached by an IP address
    whose certificate carries only its DNS name (paho checks the host it dialled)."""

    expected_name = ""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):  # type: ignore[no-untyped-def,override]
        return super().wrap_socket(sock, *args, server_hostname=self.expected_name or server_hostname, **kwargs)


def tls_context(ca_file: str, server_name: str = "") -> ssl.SSLContext:
    """TLS 1.2 or newer, the broker's certificate checked against the fleet CA and its name."""
    if not Path(ca_file).is_file():
        raise FleetAccountError(f"the fleet CA certificate {ca_file} does not exist: copy it from the broker "
                                "(`python -m fleet init` made it)")
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.expected_name = server_name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    return context


def make_client(account: FleetAccount, client_id: str, *,
                will: tuple[str, bytes] | None = None) -> mqtt.Client:
    """A paho client ready for `connect_async` + `loop_start` (or `connect` + a loop)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(account.username, account.password)
    client.tls_set_context(tls_context(account.ca_file, account.server_name))
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
