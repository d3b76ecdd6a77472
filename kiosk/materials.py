"""How each material of an item is provided in this visit: the one rule the screen shows and
the application sends.

An e-licence wins over a scan of the same material: it is the issuing department's own record
(current, verifiable, nothing to read off a picture), and not sending the picture keeps a copy
of the citizen's document off the network. A scan wins over a promise: the paper is there,
nothing is left owing (容缺). A promise counts only when the citizen made it on the materials
step, agreeing to the commitment text (告知承诺); nothing is promised on their behalf.
"""
from __future__ import annotations

from typing import Any

from kiosk.catalogue import Material, Service
from kiosk.session import Session


def held_licences(session: Session) -> dict[str, dict[str, Any]]:
    """E-licence type -> the licence, as the platform listed them; the resident ID card just
    read counts as the ID e-licence even when the platform could not be asked."""
    held = {str(lic.get("type")): lic for lic in session.licences}
    identity = session.identity
    if "id_card" not in held and getattr(identity, "card_type", "") == "resident":
        held["id_card"] = {"type": "id_card", "number": getattr(identity, "id_number", "")}
    return held


def how_provided(material: Material, session: Session, held: dict[str, dict[str, Any]] | None = None) -> str:
    """"e_licence", "scan", "promise" or "" (not provided)."""
    held = held_licences(session) if held is None else held
    if material.e_licence and material.e_licence in held:
        return "e_licence"
    if material.id in session.scans:
        return "scan"
    if material.promise_allowed and material.id in session.promises:
        return "promise"
    return ""


def missing(service: Service, session: Session) -> list[Material]:
    """Required materials not provided in any way: the application would be refused."""
    held = held_licences(session)
    return [m for m in service.materials if m.required and not how_provided(m, session, held)]


def for_application(service: Service, session: Session) -> list[dict[str, str]]:
    """The materials part of the application; a material not provided is left out."""
    held = held_licences(session)
    out = []
    for m in service.materials:
        how = how_provided(m, session, held)
        if how == "e_licence":
            out.append({"id": m.id, "provided": how, "reference": str(held[m.e_licence or ""].get("number", ""))})
        elif how == "scan":
            out.append({"id": m.id, "provided": how, "reference": session.scans[m.id].reference})
        elif how == "promise":
            out.append({"id": m.id, "provided": how})
    return out
