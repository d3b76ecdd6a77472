"""Deliver the outbox to the platform: at once when possible, later when not.

One worker thread drains what is due; a failed attempt backs off exponentially; a 4xx
answer is final (kept, flagged for the help desk, never retried into a loop).

An application's scans go first, each with PUT /v1/scans/{sha256} (idempotent by content,
so uploading again on every attempt is harmless and survives a platform that lost one),
and only when all are stored the application that names them. The application body is the
queued payload, unchanged, so every attempt sends the same bytes for its idempotency key.
A scan the platform refuses makes the entry rejected: the application could only fail.
A row that no longer opens (see kiosk/outbox.py) is set aside as unreadable, kept for the
technician, and the round goes on with the next: one bad row never holds up the others.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from kiosk.govclient import PlatformClient, PlatformRejected, PlatformUnavailable, expect_object, expect_text
from kiosk.outbox import DELIVERED, Entry, Outbox, OutboxError, OutboxUnreadable

log = logging.getLogger(__name__)

# outbox kind -> the client method that delivers it, and the answer's receipt field
_SENDERS = {"application": ("submit_application", "receipt_number"), "rating": ("rate", "rating_number"),
            "consultation": ("consult", "ticket_number")}


class Deliverer:
    def __init__(self, outbox: Outbox, client: PlatformClient, *, interval_s: float = 5.0,
                 backoff_min_s: float = 5.0, backoff_max_s: float = 600.0) -> None:
        self.outbox = outbox
        self.client = client
        self.interval_s = interval_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._lock = threading.Lock()  # one delivery at a time: never two sends of one row
        self._stop = threading.Event()
        self._wake = threading.Event()  # something new was queued: deliver now, not at the next round
        self._thread: threading.Thread | None = None

    def deliver(self, entry: Entry, client: PlatformClient | None = None) -> Entry:
        """One attempt (with `client`, e.g. a quick one while the citizen waits)."""
        method, receipt_field = _SENDERS[entry.kind]
        send = getattr(client or self.client, method)
        with self._lock:
            current = self.outbox.get(entry.id)
            if current.state != "pending":
                return current
            try:
                payload = self.outbox.payload(current)
                if current.kind == "application":
                    # the number the citizen may hold on paper while it waited: the platform's
                    # progress page finds the application by it too (the same on every attempt)
                    payload.setdefault("terminal_receipt", current.local_receipt)
                    self._upload_scans(current, payload, client or self.client)
                answer = expect_object(send(payload, current.idempotency_key), method)
                receipt = expect_text(answer.get(receipt_field), f"{method}: {receipt_field}", optional=True)
            except OutboxUnreadable as exc:
                self.outbox.set_aside(current, str(exc))
                log.error("outbox %s set aside, not sent: %s", current.local_receipt, exc)
            except PlatformUnavailable as exc:
                wait = min(self.backoff_max_s, self.backoff_min_s * 2 ** current.attempts)
                self.outbox.mark_failed(current, str(exc), wait)
                log.warning("outbox %s not delivered (%s); next try in %.0f s",
                            current.local_receipt, exc, wait)
            except PlatformRejected as exc:
                self.outbox.mark_failed(current, str(exc), None)
                log.error("outbox %s rejected by the platform: %s", current.local_receipt, exc)
            else:
                try:
                    self.outbox.mark_delivered(current, receipt)
                except OutboxError as exc:
                    # the platform has it; only our record of that failed (a full disk). The citizen
                    # gets the platform's receipt; the entry stays pending and its next attempt,
                    # with the same idempotency key, is answered with the same application
                    log.error("outbox %s delivered as %s but not recorded: %s", current.local_receipt, receipt, exc)
                    return dataclasses.replace(current, state="delivered", remote_receipt=receipt)
                log.info("outbox %s delivered as %s", current.local_receipt, receipt)
            return self.outbox.get(entry.id)

    def _upload_scans(self, entry: Entry, payload: dict[str, Any], client: PlatformClient) -> None:
        """PUT every scan queued with the entry; a refusal names the material(s) it was for."""
        files = self.outbox.attachments(entry)
        for scan in files:
            try:
                client.put_scan(scan.data, scan.media_type)
            except PlatformRejected as exc:
                used_by = [str(m.get("id")) for m in payload.get("materials", [])
                           if isinstance(m, dict) and m.get("reference") == f"scan:{scan.sha256}"]
                raise PlatformRejected(exc.status, exc.code,
                                       f"the scan of material {', '.join(used_by) or '?'} ({scan.media_type}, "
                                       f"{len(scan.data)} bytes, sha256 {scan.sha256[:12]}...) was refused, so "
                                       f"the application was not sent: {exc.message}", exc.fields) from exc
        if files:
            log.info("outbox %s: %d scan(s) on the platform", entry.local_receipt, len(files))

    def drain(self) -> int:
        """Deliver everything due now; returns how many were delivered."""
        delivered = 0
        for entry in self.outbox.due():
            if self._stop.is_set():
                break
            delivered += self.deliver(entry).state == DELIVERED
        return delivered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver what is due soon rather than at the next interval (a rating just given)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.drain()
            except Exception:  # the worker must outlive any one bad row
                log.exception("outbox delivery round failed")
