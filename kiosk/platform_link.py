"""The terminal's link to the platform: identify, catalogue, prefill, submit through the outbox.

Everything the visit needs from the platform goes through here, so the visit itself stays
free of network code and the rules "nothing accepted is lost" and "what the state knows
is never typed" live in one place.
"""
from __future__ import annotations

import datetime
import json
import logging
import threading
from pathlib import Path
from typing import Any

from config.schema import KioskConfig
from govapi.signing import KeyFileError, KeyPair
from kiosk.catalogue import Catalogue, CatalogueError, Service
from kiosk.delivery import Deliverer
from kiosk.govclient import PlatformClient, PlatformError, new_idempotency_key
from kiosk.outbox import DELIVERED, Outbox, OutboxError
from kiosk.session import Session
from kiosk.visit import Receipt, SubmitError

log = logging.getLogger(__name__)

CARD_FIELDS = ("card_type", "id_number", "name", "birth_date", "gender_code", "nation_code",
               "address", "valid_from", "valid_to", "issuer")
# the quick calls made while a citizen waits: one try, short timeout
_INTERACTIVE_TIMEOUT_S = 3.0


def _path(data_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else data_dir / path


def card_for_platform(identity: Any) -> dict[str, Any]:
    """The card read as the platform's identify call takes it (no photo, dates ISO)."""
    out: dict[str, Any] = {}
    for name in CARD_FIELDS:
        value = getattr(identity, name, None)
        if isinstance(value, (datetime.date,)):
            value = value.isoformat()
        out[name] = "" if value is None else str(value)
    return out


NO_FACE_CHECK = {"method": "none", "passed": False, "score": None, "liveness": None,
                 "model_versions": {}, "evidence_signature": None}


class PlatformLink:
    def __init__(self, cfg: KioskConfig, data_dir: Path) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        pcfg = cfg.platform
        self.key_file = _path(data_dir, pcfg.key_file)
        try:
            keypair: KeyPair | None = KeyPair.load(self.key_file)
        except KeyFileError as exc:
            log.warning("platform: %s", exc)
            keypair = None
        self.client = PlatformClient(pcfg.url, cfg.terminal.id, keypair, timeout_s=pcfg.timeout_s)
        self.quick = PlatformClient(pcfg.url, cfg.terminal.id, keypair,
                                    timeout_s=_INTERACTIVE_TIMEOUT_S, retries=0)
        self.outbox = Outbox(_path(data_dir, pcfg.outbox_db), _path(data_dir, pcfg.outbox_key_file),
                             cfg.terminal.id)
        self.deliverer = Deliverer(self.outbox, self.client, interval_s=pcfg.delivery_interval_s)
        self.cache_file = data_dir / "cache" / "catalogue.json"

    @property
    def enrolled(self) -> bool:
        return self.client.keypair is not None

    def start(self) -> None:
        self.deliverer.start()

    def stop(self) -> None:
        self.deliverer.stop()
        self.outbox.close()

    # -- catalogue -------------------------------------------------------------------------
    def load_catalogue(self) -> Catalogue | None:
        """The platform's catalogue, else the last one kept on disk, else None."""
        try:
            data = self.client.catalogue()
            catalogue = Catalogue.from_platform(data)
        except (PlatformError, CatalogueError) as exc:
            log.warning("catalogue from the platform not available (%s); using the last copy", exc)
        else:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.cache_file)
            return catalogue
        try:
            return Catalogue.from_platform(json.loads(self.cache_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, CatalogueError):
            return None

    # -- the citizen -------------------------------------------------------------------------
    def identify(self, session: Session) -> None:
        """Exchange the card read for a citizen token and fetch their e-licences (best effort)."""
        if session.identity is None or not self.enrolled:
            return
        try:
            token = self.quick.identify(session.visit_id, card_for_platform(session.identity), NO_FACE_CHECK)
            licences = self.quick.licences(token.token)
        except PlatformError as exc:
            log.warning("identify at the platform failed: %s", exc)
            return
        session.citizen_token = token
        session.licences = list(licences.get("licences", licences) if isinstance(licences, dict) else licences)

    def prefill(self, session: Session, service: Service) -> dict[str, str]:
        token = session.citizen_token
        if token is None:
            return {}
        try:
            data = self.quick.prefill(service.id, token.token)
        except PlatformError as exc:
            log.warning("prefill for %s failed: %s", service.id, exc)
            return {}
        values = data.get("values", data)
        return {k: str(v.get("value", "")) if isinstance(v, dict) else str(v) for k, v in values.items()}

    def materials_for(self, session: Session, service: Service) -> list[dict[str, str]]:
        """E-licences found automatically; promised where the item allows it."""
        held = {lic.get("type"): lic for lic in session.licences}
        out = []
        for m in service.materials:
            if m.e_licence and m.e_licence in held:
                out.append({"id": m.id, "provided": "e_licence", "reference": str(held[m.e_licence].get("number", ""))})
            elif m.promise_allowed:
                out.append({"id": m.id, "provided": "promise"})
        return out

    # -- submission: outbox first, then deliver ---------------------------------------------------
    def submit(self, session: Session, service: Service, answers: dict[str, str]) -> Receipt:
        identity = session.identity
        payload = {
            "item_id": service.id,
            "visit_id": session.visit_id,
            "citizen": {"id_number": getattr(identity, "id_number", ""), "name": getattr(identity, "name", "")},
            "face_check": NO_FACE_CHECK,
            "answers": answers,
            "materials": self.materials_for(session, service),
            "submitted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        try:
            entry = self.outbox.enqueue("application", payload, new_idempotency_key())
        except OutboxError as exc:
            raise SubmitError(str(exc)) from exc
        if not self.enrolled:
            return Receipt(entry.local_receipt, delivered=False)
        entry = self.deliverer.deliver(entry, self.quick)
        if entry.state == DELIVERED:
            return Receipt(entry.remote_receipt or entry.local_receipt, delivered=True)
        if entry.state == "rejected":
            raise SubmitError(f"the platform refused the application: {entry.last_error}")
        return Receipt(entry.local_receipt, delivered=False)


def identify_in_background(link: PlatformLink, session: Session) -> threading.Thread:
    thread = threading.Thread(target=link.identify, args=(session,), name="identify", daemon=True)
    thread.start()
    return thread
