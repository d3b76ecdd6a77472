"""A private mosquitto for the fleet tests: TLS on 127.0.0.1, its own CA and accounts."""
from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from fleet.broker import Broker


@pytest.fixture(scope="module")
def fleet_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("mosquitto is not installed: bash scripts/setup.sh installs it")
    broker = Broker(tmp_path_factory.mktemp("broker") / "fleet").start()
    try:
        yield broker
    finally:
        broker.stop()

