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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.schema import KioskConfig
from govapi.signing import KeyFileError, KeyPair
from kiosk import materials
from kiosk.catalogue import Catalogue, CatalogueError, Service
from kiosk.delivery import Deliverer
from kiosk.govclient import (
    MalformedAnswer,
    PlatformClient,
    PlatformError,
    expect_object,
    expect_objects,
    expect_text,
    expect_translations,
    new_idempotency_key,
)
from kiosk.outbox import DELIVERED, UNREADABLE, OutboxError, open_outbox
from kiosk.session import Session
from kiosk.visit import Receipt, SubmissionRefused, SubmitError

log = logging.getLogger(__name__)

CARD_FIELDS = ("card_type", "id_number", "name", "birth_date", "gender_code", "nation_code",
               "address", "appended_address", "valid_from", "valid_to", "issuer")
# the quick calls made while a citizen waits: one try, short timeout
_INTERACTIVE_TIMEOUT_S = 3.0


def _path(data_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else data_dir / path


def card_for_platform(identity: Any) -> dict[str, Any]:
    """The card read as the platform's identify call takes it: no photo, dates ISO, and a
    field the card does not carry (None) left out rather than sent empty."""
    out: dict[str, Any] = {}
    for name in CARD_FIELDS:
        value = getattr(identity, name, None)
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime.date) else str(value)
    return out


def catalogue_cache(data_dir: Path) -> Path:
    """Where the last good catalogue is kept, so a restart without network still has services."""
    return data_dir / "cache" / "catalogue.json"


def keep_catalogue(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def _listed(answer: dict[str, Any], key: str, texts: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    """answer[key] (missing: []) as a list of objects whose `texts` are translations and whose
    item_id, if any, a text: the parts of the platform's answer the visit reads and shows."""
    items = expect_objects(answer.get(key, []), f"{what}: {key}")
    for n, item in enumerate(items):
        for name in texts:
            expect_translations(item.get(name), f"{what}: {key}[{n}].{name}", optional=True)
        expect_text(item.get("item_id"), f"{what}: {key}[{n}].item_id", optional=True)
    return items


def _prefill_values(data: dict[str, Any], what: str) -> dict[str, str]:
    """The prefill answer's values as texts: {"key": "text"} or {"key": {"value": ..., "source": ...}};
    a value left null is left out (the platform does not know it)."""
    out: dict[str, str] = {}
    for key, entry in expect_object(data.get("values", data), f"{what}: values").items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise MalformedAnswer(f"{what}: the value of field {key!r} is not a text")
        out[key] = str(value)
    return out


NO_FACE_CHECK = {"method": "none", "passed": False, "score": None, "liveness": None,
                 "model_versions": {}, "evidence_signature": ""}


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
        # a full disk at start leaves the outbox closed for now, not the terminal down
        self.outbox = open_outbox(_path(data_dir, pcfg.outbox_db), _path(data_dir, pcfg.outbox_key_file),
                                  cfg.terminal.id)
        # the delivery thread backs off by itself: its client does not retry (and sleep) holding
        # a decrypted payload
        self.background = PlatformClient(pcfg.url, cfg.terminal.id, keypair, timeout_s=pcfg.timeout_s, retries=0)
        self.deliverer = Deliverer(self.outbox, self.background, interval_s=pcfg.delivery_interval_s,
                                   backoff_min_s=pcfg.delivery_interval_s)
        self.cache_file = catalogue_cache(data_dir)
        self.catalogue_version = ""
        self.on_catalogue: Callable[[Catalogue], None] | None = None  # a newer catalogue arrived
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        # (visit id, done, thread) of the latest identify call: one per visit
        self._identifying: tuple[str, threading.Event, threading.Thread] | None = None
        self._identify_lock = threading.Lock()

    def outbox_counts(self) -> dict[str, int]:
        """The outbox's figures; OutboxError while it cannot be opened (a full disk at start)."""
        return self.outbox.counts()

    def check_reachable(self) -> None:
        """One quick unsigned GET /v1/health (it works before enrolment too); PlatformError
        when the platform does not answer."""
        self.quick.health()

    @property
    def enrolled(self) -> bool:
        return self.client.keypair is not None

    def start(self) -> None:
        self.deliverer.start()
        self._refresher = threading.Thread(target=self._refresh_loop, name="catalogue-refresh", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        self.deliverer.stop()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
        self.outbox.close()

    # -- catalogue -------------------------------------------------------------------------
    def load_catalogue(self) -> Catalogue | None:
        """At start-up: the platform's catalogue (one quick try), else the last copy kept on
        disk, else None; the refresh thread keeps trying in the background."""
        catalogue = self.fetch_catalogue(self.quick)
        if catalogue is not None:
            return catalogue
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            catalogue = Catalogue.from_platform(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError, CatalogueError) as exc:
            log.warning("the kept catalogue %s is unusable (%s)", self.cache_file, exc)
            return None
        log.info("using the catalogue kept on disk (version %s)", catalogue.version or "unknown")
        return catalogue

    def fetch_catalogue(self, client: PlatformClient | None = None) -> Catalogue | None:
        """Fetch the catalogue and keep a copy on disk; None (and a log line) on failure."""
        try:
            data = (client or self.client).catalogue()
            catalogue = Catalogue.from_platform(data)
        except (PlatformError, CatalogueError) as exc:
            log.warning("catalogue from the platform not available: %s", exc)
            return None
        try:
            keep_catalogue(self.cache_file, data)
        except OSError as exc:  # a full disk: the catalogue is used all the same, only not cached
            log.warning("catalogue not cached in %s: %s", self.cache_file, exc)
        self.catalogue_version = catalogue.version
        return catalogue

    def _refresh_loop(self) -> None:
        """Fetch soon after a failed start-up load, then every catalogue_refresh_s."""
        soon, every = self.cfg.platform.delivery_interval_s, self.cfg.platform.catalogue_refresh_s
        wait = every if self.catalogue_version else soon
        while not self._stop.wait(wait):
            before = self.catalogue_version
            catalogue = self.fetch_catalogue()
            if catalogue is None:  # back off from `soon` up to `every`
                wait = min(every, max(wait * 2, soon)) if before == "" else every
                continue
            wait = every
            if catalogue.version != before and self.on_catalogue is not None:
                log.info("catalogue version %s replaces %s", catalogue.version, before or "none")
                self.on_catalogue(catalogue)

    # -- the citizen -------------------------------------------------------------------------
    def identify_in_background(self, session: Session) -> threading.Thread:
        """Start exchanging the card read for a citizen token; the device thread goes on at once.
        Once per visit: asked again for the same visit (the citizen's page may have started it
        first, see `_identified`), the call already running (or done) is returned."""
        with self._identify_lock:
            pending = self._identifying
            if pending is not None and pending[0] == session.visit_id:
                return pending[2]
            done = threading.Event()
            thread = threading.Thread(target=self.identify, args=(session, done), name="identify", daemon=True)
            self._identifying = (session.visit_id, done, thread)
            thread.start()
            return thread

    def identify(self, session: Session, done: threading.Event | None = None) -> None:
        """Exchange the card read for a citizen token and fetch their e-licences (best effort)."""
        try:
            if session.identity is None or not self.enrolled:
                return
            try:
                token = self.quick.identify(session.visit_id, card_for_platform(session.identity),
                                            session.face_check or NO_FACE_CHECK)
                answer = self.quick.licences(token.token)
                # {"licences": [...]} as documented, or the bare list
                licences = expect_objects(answer.get("licences") if isinstance(answer, dict) else answer,
                                          "GET /v1/citizens/me/licences: licences")
            except PlatformError as exc:
                log.warning("identify at the platform failed: %s", exc)
                return
            if session.identity is None:  # the visit was wiped while we waited: keep nothing
                return
            session.citizen_token = token
            session.licences = list(licences)
        finally:
            if done is not None:
                done.set()

    def _identified(self, session: Session) -> None:
        """Wait for this visit's identify call (both its quick calls at most). When none was
        started for it yet, start it now: the citizen's page is loaded by a worker that the
        visit's HOME view wakes while the device thread is still inside `card_read`, i.e.
        before the terminal asks for the identify call (face check off); asking the platform
        without waiting for it showed "unavailable" on the citizen's own page at random."""
        pending = self._identifying
        if ((pending is None or pending[0] != session.visit_id) and session.identity is not None
                and session.citizen_token is None):
            self.identify_in_background(session)
            pending = self._identifying
        if pending is not None and pending[0] == session.visit_id:
            pending[1].wait(2 * _INTERACTIVE_TIMEOUT_S + 1)

    def prefill(self, session: Session, service: Service) -> dict[str, str]:
        self._identified(session)
        token = session.citizen_token
        if token is None:
            return {}
        try:
            return _prefill_values(self.quick.prefill(service.id, token.token), f"prefill of {service.id}")
        except PlatformError as exc:
            log.warning("prefill for %s failed: %s", service.id, exc)
            return {}

    def home(self, session: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """The citizen's own page: benefits and applications in progress; None when the platform
        could not be asked (the visit goes on without them)."""
        self._identified(session)
        token = session.citizen_token
        if token is None:
            return None
        try:
            benefits = _listed(self.quick.benefits(token.token), "benefits", ("title", "reason"),
                               "GET /v1/citizens/me/benefits")
            applications = _listed(self.quick.my_applications(token.token), "applications", ("title",),
                                   "GET /v1/citizens/me/applications")
        except PlatformError as exc:
            log.warning("the citizen's page could not be loaded: %s", exc)
            return None
        return list(benefits), list(applications)

    def rate(self, level: int, receipt: Receipt | None, item_id: str | None, visit_id: str) -> None:
        """好差评: queued durably and delivered by the outbox like an application (a rating given
        while the platform is down still counts)."""
        payload: dict[str, Any] = {"level": level, "visit_id": visit_id}
        if item_id:
            payload["item_id"] = item_id
        if receipt is not None and receipt.delivered:
            payload["receipt_number"] = receipt.number
        try:
            self.outbox.enqueue("rating", payload, new_idempotency_key())
        except OutboxError as exc:
            log.error("the rating could not be kept: %s", exc)
            return
        self.deliverer.wake()

    def call_help(self, visit_id: str, item_id: str | None, step: str) -> tuple[str, str]:
        """Ask the help desk for a person (a "help" consultation); (ticket, hotline). Raises
        PlatformError when the platform cannot be reached: the screen then gives the hotline."""
        payload: dict[str, Any] = {"kind": "help", "text": f"终端 {self.cfg.terminal.id} 求助（步骤 {step}）",
                                   "visit_id": visit_id}
        if item_id:
            payload["item_id"] = item_id
        answer = self.quick.consult(payload, new_idempotency_key())
        return (expect_text(answer.get("ticket_number"), "POST /v1/consultations: ticket_number", optional=True),
                expect_text(answer.get("hotline"), "POST /v1/consultations: hotline", optional=True))

    def materials_for(self, session: Session, service: Service) -> list[dict[str, str]]:
        """What the application says about each material (see kiosk.materials)."""
        return materials.for_application(service, session)

    # -- submission: outbox first, then deliver ---------------------------------------------------
    def submit(self, session: Session, service: Service, answers: dict[str, str]) -> Receipt:
        self._identified(session)
        identity = session.identity
        materials = self.materials_for(session, service)
        # the scans the application names travel with it, sealed in the outbox, uploaded first
        scans = [(scan.media_type, scan.data) for m in materials if m["provided"] == "scan"
                 and (scan := session.scans.get(m["id"])) is not None]
        payload = {
            "item_id": service.id,
            "visit_id": session.visit_id,
            "citizen": {"id_number": getattr(identity, "id_number", ""), "name": getattr(identity, "name", "")},
            "face_check": session.face_check or NO_FACE_CHECK,
            "answers": answers,
            "materials": materials,
            "submitted_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        try:
            entry = self.outbox.enqueue("application", payload, new_idempotency_key(), attachments=scans)
        except OutboxError as exc:
            raise SubmitError(str(exc)) from exc
        if not self.enrolled:
            return Receipt(entry.local_receipt, delivered=False)
        entry = self.deliverer.deliver(entry, self.quick)
        if entry.state == DELIVERED:
            return Receipt(entry.remote_receipt or entry.local_receipt, delivered=True)
        if entry.state == "rejected":
            raise SubmissionRefused(f"the platform refused the application: {entry.last_error}")
        if entry.state == UNREADABLE:  # kept for the technician, but it will not be sent
            raise SubmitError(entry.last_error)
        return Receipt(entry.local_receipt, delivered=False)

