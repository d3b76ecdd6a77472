"""The fleet channel under load: many terminals' heartbeats into one console, and how fast a
fault reaches a staff member's browser.

Starts a private mosquitto (TLS, accounts, ACL: fleet.broker.Broker) and one help-desk
console (its MQTT bridge and its HTTP server with live updates) on 127.0.0.1, then:

1. N simulated terminals (helpdesk.sim_terminal, each a paho client with its own account)
   publish heartbeats as fast as they can for T seconds: heartbeats per second published, and
   received and processed by the console (its fleet state counts them);
2. while they do, one more terminal raises K faults (up/alert, QoS 1), one at a time, and a
   browser-side SSE client (a logged-in viewer on /api/events) notes when each alert arrives:
   the delay from publish to arrival, p50/p95 (and the same again with the fleet quiet);
3. a real kiosk (a headless Terminal with its fleet agent and the emulated receipt printer on
   its pseudo-terminal): the printer runs out of paper R times, and the same client notes when
   the alert arrives: the whole path from the fault on the device (the driver's status poll,
   the agent, the broker, the console) to the staff member's browser.

    .venv/bin/python bench/fleet_heartbeats.py [--terminals 20] [--seconds 10] [--alerts 40] [--kiosk-rounds 10]

Prints figures only; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from fleet.broker import Broker  # noqa: E402
from govapi.signing import KeyPair  # noqa: E402
from helpdesk.console import Console, ConsoleSettings  # noqa: E402
from helpdesk.server import ConsoleServer  # noqa: E402
from helpdesk.sim_terminal import SimTerminal  # noqa: E402

PASSWORD = "bench password 1234"
BATCH = 200  # heartbeats published before waiting for the last to leave (bounds paho's queue)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class AlertWatcher:
    """A browser's EventSource, as far as timing goes: when did each alert id arrive."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        r = self.client.post("/login", data={"name": "bench", "password": PASSWORD})
        if r.status_code != 303:
            raise RuntimeError(f"bench login refused: {r.status_code}")
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.ready.wait(20):
            raise RuntimeError("the console's live stream did not start")

    def _run(self) -> None:
        kind = ""
        try:
            with self.client.stream("GET", "/api/events", timeout=None) as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        if kind == "snapshot":
                            self.ready.set()
                        elif kind == "alert":
                            data = json.loads(line[6:])["data"]
                            if data["active"]:
                                self.arrived.setdefault(data["id"], time.perf_counter())
        except httpx.HTTPError:
            pass  # the server stopped

    def close(self) -> None:
        self.client.close()


def hammer(sim: SimTerminal, stop: threading.Event, counter: list[int], rate: float) -> None:
    """Heartbeats as fast as paho takes them (in batches, so its queue stays bounded), or at
    `rate` per second when given."""
    sent = 0
    batch = BATCH if rate <= 0 else 1
    next_at = time.perf_counter()
    while not stop.is_set():
        info = None
        for _ in range(batch):
            sim.seq += 1
            info = sim.publish("heartbeat", {"seq": sim.seq, "time": time.time(), "step": "attract",
                                             "in_visit": False, "heartbeat_s": 30,
                                             "outbox": {"pending": 0, "delivered": 0, "rejected": 0}}, qos=0)
            sent += 1
        if rate > 0:
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
        elif info is not None:
            try:
                info.wait_for_publish(10)
            except (RuntimeError, ValueError):
                break
    counter.append(sent)


def flood_child(args: argparse.Namespace) -> None:
    """The terminals' side, in its own process so its threads do not starve the console's."""
    from fleet.client import FleetAccount

    accounts = json.loads(Path(args.flood).read_text(encoding="utf-8"))
    sims = [SimTerminal(FleetAccount(a["host"], a["port"], a["ca_file"], a["username"], a["password"])).start(
        heartbeats=False) for a in accounts]
    print("ready", flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    counters: list[int] = []
    threads = [threading.Thread(target=hammer, args=(s, stop, counters, args.rate), daemon=True) for s in sims]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    elapsed = time.perf_counter() - t0
    for sim in sims:
        sim.stop(goodbye=False)
    print(json.dumps({"published": sum(counters), "elapsed": elapsed}), flush=True)


def raise_faults(sim: SimTerminal, count: int, tag: str, gap_s: float) -> dict[str, float]:
    """Raise `count` faults `gap_s` apart; when each was published."""
    sent: dict[str, float] = {}
    for i in range(count):
        alert_id = f"bench.{tag}.{i}"
        sent[alert_id] = time.perf_counter()
        sim.alert(alert_id, True, kind="paper_out", device="receipt_printer", detail="bench")
        time.sleep(gap_s)
    return sent


def delays(sent: dict[str, float], watcher: AlertWatcher, wait_s: float = 30.0) -> list[float]:
    """Milliseconds from publish to arrival, after waiting (at most `wait_s`) for all to arrive."""
    deadline = time.perf_counter() + wait_s
    while time.perf_counter() < deadline and not all(a in watcher.arrived for a in sent):
        time.sleep(0.01)
    return [(watcher.arrived[a] - t) * 1000 for a, t in sent.items() if a in watcher.arrived]


def show(label: str, delays: list[float], wanted: int) -> None:
    if not delays:
        print(f"  {label}: no alert arrived")
        return
    print(f"  {label}: p50 {statistics.median(delays):.1f} ms, p95 {percentile(delays, 95):.1f} ms, "
          f"max {max(delays):.1f} ms ({len(delays)}/{wanted} arrived)")


def kiosk_faults(broker: Broker, console_key: KeyPair, watcher: AlertWatcher, folder: Path,
                 rounds: int) -> list[float]:
    """Paper out on a real kiosk's emulated printer -> the alert in the browser's stream (ms)."""
    import logging

    from config.loader import load_config
    from kiosk.terminal import Terminal

    for noisy in ("devices", "kiosk"):  # every paper-out is a warning there; the figures are what counts
        logging.getLogger(noisy).setLevel(logging.ERROR)

    account = broker.add_terminal("BENCH-KIOSK")
    secret = folder / "fleet-password"
    secret.write_text(account.password)
    secret.chmod(0o600)
    lines = ["[terminal]", 'id = "BENCH-KIOSK"', 'location = "bench"', f'data_dir = "{folder / "data"}"',
             "[platform]", 'url = ""', "[face]", "enabled = false",
             "[fleet]", "enabled = true", f'broker_host = "{broker.host}"', f"broker_port = {broker.port}",
             f'ca_file = "{broker.ca_file}"', f'password_file = "{secret}"', "heartbeat_s = 5",
             f'console_public_key = "{console_key.public_key}"']
    for name in ("idcard", "smartcard", "camera", "qr_scanner", "scanner", "a4_printer"):
        lines += [f"[devices.{name}]", "enabled = false"]
    lines += ["[devices.receipt_printer]", "emulate = true", "[devices.receipt_printer.emulator]", "render = false"]
    config = folder / "terminal.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    terminal = Terminal(load_config(config, environ={}))
    terminal.start()
    took: list[float] = []
    try:
        assert terminal.fleet is not None
        if not terminal.fleet.wait_connected(20):
            raise RuntimeError("the bench kiosk did not connect to the broker")
        printer = terminal.emulators["receipt_printer"]
        time.sleep(1.0)  # the printer opened and its first status read
        for _ in range(rounds):
            watcher.arrived.pop("receipt_printer.paper_out", None)
            t0 = time.perf_counter()
            printer.paper_out()
            deadline = t0 + 20
            while "receipt_printer.paper_out" not in watcher.arrived and time.perf_counter() < deadline:
                time.sleep(0.002)
            if "receipt_printer.paper_out" in watcher.arrived:
                took.append((watcher.arrived["receipt_printer.paper_out"] - t0) * 1000)
            printer.paper_ok()
            time.sleep(1.5)  # cleared at the device, the agent and the console before the next round
    finally:
        terminal.stop()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--terminals", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--alerts", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="heartbeats per second per terminal (default 0: as fast as they can)")
    parser.add_argument("--kiosk-rounds", type=int, default=10,
                        help="paper-out faults on a real kiosk's emulated printer (0: leave it out)")
    parser.add_argument("--flood", default="", help=argparse.SUPPRESS)  # the child process's accounts file
    args = parser.parse_args()
    if args.flood:
        flood_child(args)
        return

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        broker = Broker(Path(tmp) / "broker").start()
        ids = [f"BENCH-{i:04d}" for i in range(args.terminals)] + ["BENCH-FAULT"]
        passwords = {tid: broker.files.add_account(tid) for tid in ids}  # one reload for all
        broker.reload()
        console_key = KeyPair.generate()
        console = Console(ConsoleSettings(Path(tmp) / "console", broker.console_account(), client_id="bench-console"),
                          keypair=console_key)
        console.store.add_staff("bench", "Bench", "viewer", PASSWORD)
        server = ConsoleServer(console).start()
        sims: list[SimTerminal] = []
        watcher: AlertWatcher | None = None
        try:
            assert console.bridge is not None
            if not console.bridge.connected.wait(20):
                raise RuntimeError("the console did not connect to the broker")
            for tid in ids[-1:]:  # the fault terminal here; the heartbeat ones in a child process
                sims.append(SimTerminal(broker.account(tid, passwords[tid])).start(heartbeats=False))
            watcher = AlertWatcher(server.url)
            fault = sims[-1]
            quiet = delays(raise_faults(fault, args.alerts, "quiet", 0.05), watcher)

            accounts_file = Path(tmp) / "accounts.json"
            accounts_file.touch(mode=0o600)
            accounts_file.write_text(json.dumps([{"host": broker.host, "port": broker.port, "ca_file": broker.ca_file,
                                                  "username": tid, "password": passwords[tid]} for tid in ids[:-1]]))
            child = subprocess.Popen([sys.executable, __file__, "--flood", str(accounts_file), "--seconds",
                                      str(args.seconds), "--rate", str(args.rate)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
            assert child.stdin is not None and child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the simulated terminals did not start")
            before = console.fleet.heartbeats
            child.stdin.write("go\n")
            child.stdin.flush()
            time.sleep(min(1.0, args.seconds / 4))  # let the load build up first
            under_load = raise_faults(fault, args.alerts, "load", min(0.05, args.seconds / 2 / args.alerts))
            result = json.loads(child.stdout.readline())
            child.wait(30)
            during = console.fleet.heartbeats - before
            elapsed, published = result["elapsed"], result["published"]
            drain_deadline = time.perf_counter() + 30
            last = -1
            while time.perf_counter() < drain_deadline and console.fleet.heartbeats != last:
                last = console.fleet.heartbeats
                time.sleep(0.5)
            total = console.fleet.heartbeats - before
            loaded = delays(under_load, watcher)

            pace = "as fast as possible" if args.rate <= 0 else f"at {args.rate:g}/s each"
            print(f"fleet channel: {args.terminals} terminals, {elapsed:.1f} s of heartbeats {pace} "
                  f"(QoS 0, TLS, one mosquitto, one console)")
            print(f"  published by the terminals:  {published / elapsed:9.0f} heartbeats/s ({published} in all)")
            print(f"  processed by the console:    {during / elapsed:9.0f} heartbeats/s while publishing; "
                  f"{total} of {published} in all ({100 * total / max(published, 1):.1f} %; QoS 0 may drop "
                  f"under overload)")
            print(f"  ignored as malformed:        {sum(console.bridge.garbage.values())}")
            print("fault -> alert in a browser's live stream (publish to SSE arrival):")
            show("fleet quiet        ", quiet, args.alerts)
            show("under heartbeat load", loaded, args.alerts)
            if args.kiosk_rounds > 0:
                kiosk_folder = Path(tmp) / "kiosk"
                kiosk_folder.mkdir()
                took = kiosk_faults(broker, console_key, watcher, kiosk_folder, args.kiosk_rounds)
                print("paper out on a real kiosk's emulated printer -> the alert in a browser's live stream:")
                show("device to browser   ", took, args.kiosk_rounds)
        finally:
            for sim in sims:
                sim.stop(goodbye=False)
            if watcher is not None:
                watcher.close()
            server.stop()
            console.close()
            broker.stop()


if __name__ == "__main__":
    main()
