"""CUPS queues (pycups): their state, whether they take jobs, and whether they print A4.

The print server is reached first with a plain connect (libcups waits up to 30 s on a
dead host), so CUPS not running is one line, quickly. Queues that list A4 paper come
first (certain); a queue whose media are unknown is "likely"; one whose media are known
and hold no A4 (a label or receipt printer) is not suggested, only mentioned.
"""
from __future__ import annotations

import os
import re
import socket

from devices.a4_printer.driver import parse_server
from provisioning.probes import Finding, Problem, Results

STATES = {3: "idle", 4: "printing", 5: "STOPPED"}
MEDIA_ATTRIBUTES = ["media-supported", "media-default", "media-ready"]


def _server(server: str) -> tuple[str, int, str]:
    """(host or socket path, port, words) of the server to ask; the system's default when empty."""
    import cups

    target = parse_server(server)
    if target is None:
        cups.setServer("")
        cups.setPort(0)
        host, port = cups.getServer(), cups.getPort()
    else:
        host, port = target
        cups.setServer(host)
        cups.setPort(port or 631)
    words = host if host.startswith("/") else f"{host}:{port}"
    return host, port, words + ("" if server else " (this machine's CUPS)")


def _reachable(host: str, port: int, timeout: float) -> str:
    """Empty when something listens there; else why not, in words."""
    if host.startswith("/"):
        return "" if os.path.exists(host) else f"its socket {host} does not exist"
    try:
        socket.create_connection((host, port or 631), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _media(conn: object, queue: str) -> list[str]:
    try:
        attrs = conn.getPrinterAttributes(name=queue, requested_attributes=MEDIA_ATTRIBUTES)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a queue that cannot say: its media are unknown
        return []
    media: list[str] = []
    for key in MEDIA_ATTRIBUTES:
        value = attrs.get(key)
        media += value if isinstance(value, list) else [value] if value else []
    return media


def probe(server: str, timeout: float) -> Results:
    """Every queue of the print server, A4 ones first, as [devices.a4_printer] suggestions."""
    results = Results()
    try:
        import cups
    except ImportError as exc:
        results.problems.append(Problem("cups", "pycups", f"pycups cannot load ({exc}): apt-get install libcups2 "
                                        "and run scripts/setup.sh"))
        return results
    host, port, where = _server(server)
    why = _reachable(host, port, timeout)
    if why:
        results.problems.append(Problem("cups", where, (
            f"CUPS is not running on {where} ({why}): for the A4 printer install and start it "
            "(apt-get install cups; systemctl start cups), then run detect again")))
        return results
    try:
        conn = cups.Connection(host=host, port=port) if port else cups.Connection(host=host)
        printers = conn.getPrinters()
        default = conn.getDefault()
    except (RuntimeError, cups.IPPError) as exc:
        results.problems.append(Problem("cups", where, f"CUPS on {where} does not answer ({exc}): check "
                                        "`systemctl status cups`"))
        return results
    if not printers:
        results.problems.append(Problem("cups", where, (
            f"CUPS runs on {where} but has no queue: add one for the A4 printer, e.g. "
            "lpadmin -p KioskA4 -E -v <device-uri> -m <driver> (lpinfo -v lists device URIs)")))
        return results
    ranked: list[tuple[tuple[int, int, int, int], Finding]] = []
    for order, (queue, attrs) in enumerate(printers.items()):
        media = _media(conn, queue)
        a4 = any("a4" in m.lower() for m in media)
        if media and not a4:
            results.problems.append(Problem("cups", f"queue {queue}", (
                f"queue {queue} lists no A4 paper ({', '.join(media[:4])}...): not suggested as the A4 printer")))
            continue
        state = STATES.get(int(attrs.get("printer-state", 0)), f"state {attrs.get('printer-state')}")
        accepting = bool(attrs.get("printer-is-accepting-jobs", True))
        message = attrs.get("printer-state-message") or ""
        model = attrs.get("printer-make-and-model") or attrs.get("printer-info") or "unknown model"
        words = [f"CUPS queue on {where}: {model}", state + (f" ({message})" if message else ""),
                 "accepting jobs" if accepting else "NOT accepting jobs",
                 "A4 paper listed" if a4 else "its paper sizes are unknown"]
        if queue == default:
            words.append("the server's default queue")
        ok = state != "STOPPED" and accepting
        if not ok:
            results.problems.append(Problem("cups", f"queue {queue}", (
                f"queue {queue} is {state.lower()}{'' if accepting else ' and rejects jobs'}"
                f"{f' ({message})' if message else ''}: fix the printer, then `cupsenable {queue}` and "
                f"`cupsaccept {queue}`")))
        params = {"queue": queue}
        if server:
            params["server"] = server
        finding = Finding("cups", "a4_printer", "cups", params, f"queue {queue} on {where}", ", ".join(words),
                          "certain" if a4 else "likely",
                          facts={"state": state.lower(), "accepting": accepting, "a4": a4,
                                 "device_uri": re.sub(r"//[^/@]*@", "//***@", attrs.get("device-uri", ""))})
        ranked.append(((0 if a4 else 1, 0 if ok else 1, 0 if queue == default else 1, order), finding))
    results.findings += [f for _, f in sorted(ranked, key=lambda item: item[0])]
    return results
