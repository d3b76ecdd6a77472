"""Fixtures of the platform tests: real server processes, an enrolled terminal, a known citizen.

The helpers live in `govplatform_harness.py` (a unique module name: several conftest.py
files exist in this repository, so test modules never import from "conftest").
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from govplatform_harness import Server, Terminal, card_from_emulator, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The platform with its defaults: SM2 only, face check not required."""
    yield from start_server(tmp_path_factory.mktemp("govplatform-default"))


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second platform: ECDSA allowed beside SM2, and a passed face check required."""
    yield from start_server(tmp_path_factory.mktemp("govplatform-strict"),
                            signature_algorithms="sm2-sm3,ecdsa-p256-sha256", require_face_check="true")


@pytest.fixture(scope="session")
def terminal(server: Server) -> Terminal:
    return server.enrol("T-MAIN-0001")


@pytest.fixture(scope="session")
def resident_card() -> dict[str, Any]:
    """张三, the emulator's default card; the platform holds his file (synthetic)."""
    return card_from_emulator("resident")


@pytest.fixture(scope="session")
def catalogue(terminal: Terminal) -> dict[str, Any]:
    resp = terminal.call("GET", "/v1/catalogue")
    assert resp.status_code == 200
    return resp.json()
