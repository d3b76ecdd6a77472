"""The running platform: settings, database, secret, clock; and the upkeep it does by itself.

One `Platform` per app. Upkeep (forgetting nonces outside the signing window, expired
tokens, old idempotency records; seeding appointment slots ahead) runs at start and then
at most once a minute, piggy-backed on requests, so no extra scheduler is needed.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from govapi.signing import MAX_SKEW_S
from govplatform import models as m
from govplatform.db import Database
from govplatform.security import code_hash, new_enrolment_code
from govplatform.settings import Settings

log = logging.getLogger("govplatform")

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
UPKEEP_INTERVAL_S = 60.0


def utc(value: dt.datetime) -> dt.datetime:
    """A stored (naive UTC) time as an aware one, for answers."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """An aware time as stored."""
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def china_today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).date()


@dataclass
class Platform:
    settings: Settings
    db: Database
    secret: bytes
    started_at: float = field(default_factory=time.time)
    _last_upkeep: float = 0.0
    _upkeep_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Platform:
        """Connect, bring the schema to head, load (or create) the secret."""
        db = Database(settings)
        if migrate:
            db.migrate()
        return cls(settings, db, settings.secret())

    def upkeep(self, force: bool = False) -> None:
        """Purge what is no longer needed and seed slots ahead; cheap when nothing is due."""
        now = time.time()
        if not force and now - self._last_upkeep < UPKEEP_INTERVAL_S:
            return
        if not self._upkeep_lock.acquire(blocking=False):
            return
        try:
            self._last_upkeep = now
            with self.db.session() as s:
                purge(s, self.settings, now)
            from govplatform.api.appointments import seed_slots

            with self.db.session() as s:
                added = seed_slots(s, self.settings.appointment_days)
            if added:
                log.info("seeded %d appointment slots", added)
        finally:
            self._upkeep_lock.release()


def purge(session: Session, settings: Settings, now: float) -> None:
    """Forget nonces a replay check no longer needs, ended tokens, stale idempotency records and codes."""
    utcnow = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
    # A request more than MAX_SKEW_S old is refused as stale anyway: its nonce can go.
    session.execute(delete(m.Nonce).where(m.Nonce.timestamp < int(now) - MAX_SKEW_S - 60))
    session.execute(delete(m.CitizenToken).where(m.CitizenToken.expires_at < utcnow - dt.timedelta(hours=1)))
    keep = utcnow - dt.timedelta(days=settings.idempotency_retention_days)
    session.execute(delete(m.IdempotencyRecord).where(m.IdempotencyRecord.created_at < keep))
    session.execute(delete(m.EnrolmentCode).where(m.EnrolmentCode.expires_at < utcnow - dt.timedelta(days=30)))


def issue_enrolment_code(platform: Platform, terminal_id: str) -> tuple[str, dt.datetime]:
    """A new one-time code for `terminal_id`; only its keyed hash is stored. Returns (code, expires_at UTC)."""
    code = new_enrolment_code()
    now = m.utcnow()
    expires = now + dt.timedelta(seconds=platform.settings.enrolment_code_ttl_s)
    with platform.db.session() as s:
        s.add(m.EnrolmentCode(code_hash=code_hash(platform.secret, code), terminal_id=terminal_id,
                              created_at=now, expires_at=expires, used=False))
    log.info("enrolment code issued for terminal %s, valid until %s UTC", terminal_id,
             expires.isoformat(timespec="seconds"))
    return code, utc(expires)


def next_number(session: Session, prefix: str, now: dt.datetime | None = None) -> str:
    """prefix + China date + 6-digit sequence of the day: "SQ20250301000042". Safe under concurrent writers."""
    day = china_today(now).strftime("%Y%m%d")
    from sqlalchemy import update

    result = session.execute(update(m.Counter).where(m.Counter.prefix == prefix, m.Counter.day == day)
                             .values(last=m.Counter.last + 1))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        from sqlalchemy.exc import IntegrityError

        try:
            with session.begin_nested():
                session.add(m.Counter(prefix=prefix, day=day, last=1))
        except IntegrityError:  # another writer created the day's row first
            session.execute(update(m.Counter).where(m.Counter.prefix == prefix, m.Counter.day == day)
                            .values(last=m.Counter.last + 1))
    last = session.execute(select(m.Counter.last).where(m.Counter.prefix == prefix, m.Counter.day == day)).scalar_one()
    if last > 999_999:
        raise RuntimeError(f"more than 999999 {prefix} numbers on {day}")
    return f"{prefix}{day}{last:06d}"
