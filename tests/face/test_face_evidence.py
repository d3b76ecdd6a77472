"""The face_check evidence: accepted by the platform's schema, signed by the terminal's key."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from govapi.signing import ECDSA_P256_SHA256, SM2_SM3, KeyPair, verify
from govplatform.schemas import FaceCheck
from kiosk.face import FaceEvidence, model_versions
from kiosk.face.evidence import canonical_from, evidence_from_record, utc_timestamp


def evidence(**changes) -> FaceEvidence:
    fields = {"method": "card_photo_1to1", "passed": True, "score": 0.61234, "liveness": True,
                  "model_versions": model_versions(),
                  "timestamp": utc_timestamp(dt.datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=dt.UTC))}
    fields.update(changes)
    return FaceEvidence(**fields)


@pytest.mark.parametrize("algorithm", [SM2_SM3, ECDSA_P256_SHA256])
def test_signed_evidence_validates_as_face_check_and_its_signature_verifies(algorithm):
    keypair = KeyPair.generate(algorithm)
    signed = evidence().sign(keypair)
    body = signed.face_check()
    check = FaceCheck.model_validate(body)
    assert check.passed is True and check.liveness is True and check.score == 0.612
    assert check.method == "card_photo_1to1" and check.model_versions == model_versions()
    assert 0 < len(check.evidence_signature) <= 512
    # the signature covers the canonical JSON of the fields, the timestamp included
    canonical = json.dumps(signed.signed_fields(), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode("utf-8")
    assert canonical == signed.canonical() and b'"timestamp":"2025-03-01T08:30:15+00:00"' in canonical
    assert verify(algorithm, keypair.public_key, canonical, body["evidence_signature"])
    assert signed.verify(algorithm, keypair.public_key)
    # any edit breaks it
    assert not signed.verify(algorithm, KeyPair.generate(algorithm).public_key)
    forged = FaceEvidence(**{**signed.signed_fields(), "score": 0.99}, evidence_signature=signed.evidence_signature)
    assert not forged.verify(algorithm, keypair.public_key)
    later = evidence_from_record({**signed.as_record(), "timestamp": "2025-03-02T08:30:15+00:00"})
    assert not later.verify(algorithm, keypair.public_key)
    assert evidence_from_record(signed.as_record()).verify(algorithm, keypair.public_key)


def test_the_platform_can_verify_from_the_face_check_it_receives():
    """The timestamp travels in FaceCheck's `timestamp` field, so the body alone verifies."""
    keypair = KeyPair.generate()
    body = evidence().sign(keypair).face_check()
    received = FaceCheck.model_validate(body).model_dump(mode="json")
    assert received["timestamp"] == "2025-03-01T08:30:15+00:00"
    assert verify(SM2_SM3, keypair.public_key, canonical_from(received), received["evidence_signature"])
    # for a platform whose schema lacks the field, the timestamp can be left out of the body
    assert "timestamp" not in evidence().face_check(with_timestamp=False)


def test_failed_checks_validate_too_and_scores_stay_within_the_schema():
    for fields in ({"passed": False, "score": -0.04, "liveness": None}, {"passed": False, "score": None, "liveness": False},
                   {"method": "reference_photo_1to1", "passed": True, "score": 1.0000001, "liveness": True}):
        check = FaceCheck.model_validate(evidence(**fields).sign(KeyPair.generate()).face_check())
        assert check.score is None or 0.0 <= check.score <= 1.0


def test_evidence_never_carries_an_image():
    body = json.dumps(evidence().sign(KeyPair.generate()).as_record())
    assert len(body) < 600
