"""The fleet broker as terminals meet it: TLS only, accounts only, each terminal inside its own
topics, and the last will telling the help desk when a terminal vanishes."""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from fleet import protocol
from fleet.broker import Broker, BrokerFolder
from fleet.client import (
    FleetAccount,
    FleetAccountError,
    make_client,
    read_password_file,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0


class Peer:
    """One connected client that collects what it receives and what the broker answered."""

    def __init__(self, account: FleetAccount, client_id: str, *, keepalive: int = 30,
                 will: tuple[str, bytes] | None = None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.client = make_client(account, client_id, will=will)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(list(codes))
        self.client.connect(account.host, account.port, keepalive=keepalive)
        self.client.loop_start()

    def connected(self) -> mqtt.ReasonCode:
        return self.connack.get(timeout=WAIT_S)

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        return info

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def accounts(fleet_broker: Broker) -> dict[str, FleetAccount]:
    return {"A": fleet_broker.add_terminal("T-A"), "B": fleet_broker.add_terminal("T-B"),
            "console": fleet_broker.console_account()}


def test_a_terminal_reads_and_writes_only_its_own_topics(accounts: dict[str, FleetAccount]) -> None:
    a = Peer(accounts["A"], "T-A")
    b = Peer(accounts["B"], "T-B")
    console = Peer(accounts["console"], "console")
    try:
        for peer in (a, b, console):
            assert not peer.connected().is_failure
        # A tries to read B's topics and everything. mosquitto 2.0 grants the subscriptions and
        # checks the ACL on every delivery, so what counts is what A receives (nothing of B's)
        a.subscribe(protocol.up("T-B", "heartbeat"))
        a.subscribe("kiosk/#")
        assert not console.subscribe("kiosk/+/up/#")[0].is_failure
        assert not b.subscribe(protocol.command_topic("T-B"))[0].is_failure

        b.publish(protocol.up("T-B", "heartbeat"), b"b-alive")
        console.publish(protocol.command_topic("T-B"), b"for-b")
        # A forges: a heartbeat as B, and commands to B and to itself
        forged = [a.publish(protocol.up("T-B", "heartbeat"), b"forged-as-b"),
                  a.publish(protocol.command_topic("T-B"), b"forged-command"),
                  a.publish(protocol.command_topic("T-A"), b"forged-own-command")]
        console.publish(protocol.command_topic("T-A"), b"marker-for-a")

        assert console.next_message() == (protocol.up("T-B", "heartbeat"), b"b-alive")
        assert b.next_message() == (protocol.command_topic("T-B"), b"for-b")
        # everything before the marker has been routed: A saw none of B's traffic and no forgery
        assert a.next_message() == (protocol.command_topic("T-A"), b"marker-for-a")
        assert a.messages.empty()
        assert b.messages.empty()
        # and the console never got the forged heartbeat: B's real one was its only message
        console.publish(protocol.command_topic("T-A"), b"second-marker")
        assert a.next_message() == (protocol.command_topic("T-A"), b"second-marker")
        assert console.messages.empty()
        assert all(info.rc == mqtt.MQTT_ERR_SUCCESS for info in forged)  # sent; dropped by the broker
    finally:
        for peer in (a, b, console):
            peer.close()


def test_wrong_password_unknown_ca_and_plain_tcp_are_refused(fleet_broker: Broker, tmp_path: Path,
                                                             accounts: dict[str, FleetAccount]) -> None:
    good = accounts["A"]
    wrong = FleetAccount(good.host, good.port, good.ca_file, good.username, "not-the-password")
    peer = Peer(wrong, "T-A-wrong")
    try:
        code = peer.connected()
        assert code.is_failure and "authori" in str(code).lower()
    finally:
        peer.close()

    # a broker certificate signed by another CA is not trusted
    other = BrokerFolder(tmp_path / "other")
    other.init(["localhost"])
    impostor = FleetAccount(good.host, good.port, str(other.ca_file), good.username, good.password)
    client = make_client(impostor, "T-A-impostor")
    with pytest.raises(Exception, match="(?i)certificate"):
        client.connect(impostor.host, impostor.port)

    # MQTT without TLS gets no session
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    plain.username_pw_set(good.username, good.password)
    with _no_session(plain, good):
        pass


class _no_session:
    """Connecting in clear either fails outright or never gets a CONNACK."""

    def __init__(self, client: mqtt.Client, account: FleetAccount) -> None:
        self.client, self.account = client, account

    def __enter__(self) -> None:
        answered = threading.Event()
        self.client.on_connect = lambda *_a: answered.set()
        try:
            self.client.connect(self.account.host, self.account.port, keepalive=5)
        except OSError:
            return
        self.client.loop_start()
        assert not answered.wait(3.0), "the broker answered an MQTT connect without TLS"
        self.client.loop_stop()

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()


def test_the_last_will_says_offline_when_a_terminal_dies(fleet_broker: Broker,
                                                         accounts: dict[str, FleetAccount]) -> None:
    account = fleet_broker.add_terminal("T-WILL")
    console = Peer(accounts["console"], "console-will")
    state = protocol.up("T-WILL", "state")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from fleet import protocol
        from fleet.client import FleetAccount, make_client
        account = FleetAccount({account.host!r}, {account.port}, {account.ca_file!r}, {account.username!r},
                               {account.password!r})
        will = ({state!r}, protocol.encode({{"online": False, "reason": "lost"}}))
        client = make_client(account, "T-WILL", will=will)
        client.connect(account.host, account.port, keepalive=2)
        client.loop_start()
        client.publish({state!r}, protocol.encode({{"online": True, "reason": "connected"}}), qos=1,
                       retain=True).wait_for_publish(10)
        print("up", flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert not console.connected().is_failure
        console.subscribe(state)
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        topic, payload = console.next_message()
        assert (topic, protocol.decode(payload)["online"]) == (state, True)
        child.send_signal(signal.SIGKILL)  # no DISCONNECT: only the broker's keep-alive notices
        child.wait(10)
        topic, payload = console.next_message()
        assert topic == state and protocol.decode(payload) == {"v": 1, "online": False, "reason": "lost"}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        console.close()
    # retained: a console that starts later still learns the terminal is offline
    late = Peer(accounts["console"], "console-late")
    try:
        late.connected()
        late.subscribe(state)
        assert protocol.decode(late.next_message()[1])["online"] is False
    finally:
        late.close()


def test_broker_folder_keeps_its_ca_and_accounts(tmp_path: Path) -> None:
    folder = BrokerFolder(tmp_path / "b")
    folder.init(["broker.example.cn", "10.0.0.5"], port=8883)
    ca = folder.ca_file.read_bytes()
    password = folder.add_account("GD-SZ-0001")
    assert len(password) >= 24 and folder.accounts() == ["GD-SZ-0001"]
    assert password not in folder.passwd.read_text()  # hashed by mosquitto_passwd
    folder.init(["broker.example.cn"])  # a renewed server certificate; terminals keep trusting the CA
    assert folder.ca_file.read_bytes() == ca and folder.accounts() == ["GD-SZ-0001"]
    assert oct(folder.folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder.folder / "ca.key").stat().st_mode & 0o777) == "0o600"
    conf = folder.conf.read_text()
    assert "allow_anonymous false" in conf and "listener 8883 0.0.0.0" in conf
    folder.remove_account("GD-SZ-0001")
    assert folder.accounts() == []
    with pytest.raises(protocol.ProtocolError, match="letters, digits"):
        folder.add_account("kiosk/#")


def test_password_files_must_be_owner_only(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    with pytest.raises(FleetAccountError, match="does not exist"):
        read_password_file(file)
    file.write_text("secret\n")
    file.chmod(0o644)
    with pytest.raises(FleetAccountError, match="chmod 600"):
        read_password_file(file)
    file.chmod(0o600)
    assert read_password_file(file) == "secret"


def test_the_fleet_command_sets_up_a_broker_and_a_terminal(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)

    folder = tmp_path / "broker"
    done = run("init", "--folder", str(folder), "--name", "broker.example.cn")
    assert done.returncode == 0, done.stderr
    added = run("add-terminal", "GD-SZ-0001", "--folder", str(folder), "--out", str(tmp_path / "t"),
                "--broker-host", "broker.example.cn")
    assert added.returncode == 0, added.stderr
    assert 'broker_host = "broker.example.cn"' in added.stdout and "[fleet]" in added.stdout
    password = read_password_file(tmp_path / "t" / "fleet-password")
    assert password not in added.stdout  # the password goes to the owner-only file only
    assert (tmp_path / "t" / "fleet-ca.pem").read_bytes() == (folder / "ca.pem").read_bytes()
    assert run("list", "--folder", str(folder)).stdout.split() == ["GD-SZ-0001"]
    bad = run("add-terminal", "kiosk/+", "--folder", str(folder), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
    missing = run("add-terminal", "T-1", "--folder", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y"))
    assert missing.returncode == 3 and "python -m fleet init" in missing.stderr
