"""Property-based fuzzing of the live platform (schemathesis) against the committed contract.

Every operation of `govapi/openapi.json` gets generated requests, valid and invalid, with a
bounded number of examples. Signed operations would mostly end at the 401 gate, so a
`requests` auth signs each prepared request (exact path, query and body bytes) with an
enrolled terminal's key and adds a live citizen token: the fuzzer reaches the handlers.
`identify` calls are signed by a second terminal, because a new visit ends the earlier
token of its terminal. Checked: no 5xx ever, documented status codes, content types and
response bodies that match their schemas.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from govplatform_harness import OPENAPI, Server, Terminal, card_from_emulator, new_visit
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from govapi.signing import sign_headers
from govplatform.middleware import needs_signature

MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class SignEachRequest(requests.auth.AuthBase):
    """Sign the request exactly as it goes on the wire, and present a live citizen token."""

    def __init__(self, main: Terminal, identifying: Terminal, token: str) -> None:
        self.main, self.identifying, self.token = main, identifying, token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = r.body or b""
        body = raw.encode("utf-8") if isinstance(raw, str) else raw if isinstance(raw, bytes) else b""
        path = urlsplit(r.url or "").path
        terminal = self.identifying if path == "/v1/citizens/identify" else self.main
        if needs_signature(str(r.method), path):
            r.headers.update(sign_headers(terminal.keys, terminal.terminal_id, str(r.method), r.path_url, body))
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


@pytest.fixture(scope="module")
def fuzz_auth(server: Server) -> SignEachRequest:
    main, identifying = server.enrol("T-FUZZ-MAIN"), server.enrol("T-FUZZ-IDENTIFY")
    token = main.identify(card_from_emulator("resident"), visit_id=new_visit())["citizen_token"]
    return SignEachRequest(main, identifying, token)


schema = schemathesis.openapi.from_path(str(OPENAPI))
schema.config.update(request_timeout=30)
schema.config.generation.update(max_examples=MAX_EXAMPLES, modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_fuzz_never_breaks_the_contract(case: Any, server: Server, fuzz_auth: SignEachRequest) -> None:
    response = case.call_and_validate(base_url=server.url, auth=fuzz_auth, checks=CHECKS)
    SEEN[case.operation.label][response.status_code] += 1


SEEN: defaultdict[str, Counter[int]] = defaultdict(Counter)


def test_fuzzer_got_past_the_signature_gate() -> None:
    """Every operation was reached with valid signatures: not everything ended at 401."""
    assert SEEN, ("no fuzz case ran before this check: run it with test_fuzz_never_breaks_the_contract "
                  "(the whole module), which it summarises")
    print({label: dict(codes) for label, codes in sorted(SEEN.items())})
    stuck = [label for label, codes in SEEN.items() if set(codes) <= {401}]
    assert not stuck, f"only 401 answers for {stuck}: {dict(SEEN)}"
    assert len(SEEN) == len(list(schema.get_all_operations()))
