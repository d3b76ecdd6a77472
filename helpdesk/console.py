"""The console's parts put together: store, fleet state, call desk, live events, MQTT bridge."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config.texts import Texts
from fleet.client import FleetAccount
from govapi.signing import KeyPair
from helpdesk.bridge import FleetBridge
from helpdesk.calls import CallDesk
from helpdesk.events import EventHub
from helpdesk.fleet_state import DEFAULT_HEARTBEAT_S, FleetState
from helpdesk.secrets_store import (
    DATABASE_FILE,
    load_key,
    prepare_folder,
    session_secret,
)
from helpdesk.store import Store

TEXTS_FILE = Path(__file__).with_name("texts.toml")


@dataclass(frozen=True)
class ConsoleSettings:
    data_dir: Path
    account: FleetAccount | None  # None: no fleet (pages only; a test of logins and roles)
    client_id: str = "helpdesk-console"
    keepalive_s: int = 30
    reply_timeout_s: float = 10.0  # a command without a reply by then: "no answer from the terminal"
    media_timeout_s: float = 25.0  # the kiosk gathers its ICE candidates before it answers
    default_heartbeat_s: float = DEFAULT_HEARTBEAT_S  # until a terminal announces its own
    session_max_age_s: int = 10 * 3600  # a shift
    https_only: bool = False  # set behind TLS: the session cookie is then sent over HTTPS only


class Console:
    """Everything one console process holds; `start`/`stop` the fleet connection."""

    def __init__(self, settings: ConsoleSettings, *, keypair: KeyPair | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        prepare_folder(settings.data_dir)
        self.keypair = keypair or load_key(settings.data_dir)
        self.session_secret = session_secret(settings.data_dir)
        self.texts = Texts.load(TEXTS_FILE)
        self.clock = clock
        self.store = Store(settings.data_dir / DATABASE_FILE)
        self.fleet = FleetState(default_heartbeat_s=settings.default_heartbeat_s, clock=clock)
        self.calls = CallDesk(self.store, clock=clock)
        self.hub = EventHub()
        self.bridge: FleetBridge | None = None
        if settings.account is not None:
            self.bridge = FleetBridge(settings.account, self.keypair, self.fleet, self.calls, self.hub,
                                      client_id=settings.client_id, keepalive_s=settings.keepalive_s, clock=clock)

    def start(self) -> None:
        if self.bridge is not None:
            self.bridge.start()

    def stop(self) -> None:
        self.hub.close()
        if self.bridge is not None:
            self.bridge.stop()

    def close(self) -> None:
        self.stop()
        self.store.close()
