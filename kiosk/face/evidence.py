"""The signed record of a face check that goes to the platform (`face_check`), never the image.

Fields follow govplatform.schemas.FaceCheck: method, passed, score, liveness,
model_versions, evidence_signature. The terminal signs a canonical JSON of the evidence
fields (every field but the signature, plus the time of the check) with its own key
(govapi.signing.KeyPair), so the platform or an auditor can tell the record came from an
enrolled terminal and was not edited on the way:

    json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

The score is rounded to 3 decimals (and kept within 0..1, as FaceCheck requires: a
negative cosine means "unrelated", like 0) before signing, so the signed and the sent
values are the same numbers.

The timestamp is part of what is signed (a signature without a time could be replayed
for any later check) and is sent as FaceCheck's optional `timestamp` field, so the
platform can rebuild the canonical form from the body alone: `canonical_from(face_check)`.
(FaceCheck refuses unknown fields; it gained `timestamp` in the working tree while this
module was written; against a platform without it, send `face_check(with_timestamp=False)`
and keep `as_record()` for whoever verifies.)
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Any

from govapi.signing import KeyPair, verify

SCORE_DECIMALS = 3
NO_CHECK_METHOD = "none"


def utc_timestamp(when: dt.datetime | None = None) -> str:
    """ISO 8601 in UTC to the second, e.g. 2025-01-31T08:15:00+00:00."""
    moment = when or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("the evidence time must be timezone-aware")
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def evidence_score(score: float | None) -> float | None:
    if score is None:
        return None
    return round(min(1.0, max(0.0, float(score))), SCORE_DECIMALS)


@dataclass(frozen=True)
class FaceEvidence:
    """What the terminal asserts about one face check; `sign()` returns a signed copy."""

    method: str  # card_photo_1to1 or reference_photo_1to1
    passed: bool
    score: float | None  # the live face vs the reference, cosine similarity, rounded
    liveness: bool | None  # None when no liveness check ran (e.g. every attempt mismatched)
    model_versions: dict[str, str]
    timestamp: str  # utc_timestamp() of the decision
    evidence_signature: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", evidence_score(self.score))
        object.__setattr__(self, "model_versions", dict(self.model_versions))

    def signed_fields(self) -> dict[str, Any]:
        """Every field the signature covers (all but the signature itself)."""
        return {"method": self.method, "passed": self.passed, "score": self.score, "liveness": self.liveness,
                "model_versions": dict(self.model_versions), "timestamp": self.timestamp}

    def canonical(self) -> bytes:
        """The exact bytes that are signed."""
        return json.dumps(self.signed_fields(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")

    def sign(self, keypair: KeyPair) -> FaceEvidence:
        return replace(self, evidence_signature=keypair.sign(self.canonical()))

    def verify(self, algorithm: str, public_key: str) -> bool:
        """True if `evidence_signature` is the terminal's valid signature over these fields."""
        return bool(self.evidence_signature) and verify(algorithm, public_key, self.canonical(),
                                                        self.evidence_signature)

    def face_check(self, with_timestamp: bool = True) -> dict[str, Any]:
        """The dict the platform's identify/applications API takes as `face_check`."""
        fields = self.signed_fields()
        if not with_timestamp:
            del fields["timestamp"]
        fields["evidence_signature"] = self.evidence_signature
        return fields

    def as_record(self) -> dict[str, Any]:
        """Everything needed to verify the signature later (the timestamp included)."""
        record = self.signed_fields()
        record["evidence_signature"] = self.evidence_signature
        return record


def canonical_from(face_check: dict[str, Any]) -> bytes:
    """The signed bytes, rebuilt from a received `face_check` (with its timestamp) or record."""
    return evidence_from_record(face_check).canonical()


def evidence_from_record(record: dict[str, Any]) -> FaceEvidence:
    """A FaceEvidence back from `as_record()` or `face_check()` (e.g. to verify it)."""
    fields = {k: record[k] for k in ("method", "passed", "score", "liveness", "model_versions", "timestamp")}
    return FaceEvidence(**fields, evidence_signature=record.get("evidence_signature", ""))

