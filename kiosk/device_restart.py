"""Restarting one device: the same steps whether a technician asks on the maintenance screen
or a help-desk supervisor asks remotely (kiosk/fleet_agent.py), so both report alike."""
from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

RESTART_WAIT_S = 10.0  # how long a restart waits for the supervisor to bring the device back


def restart_device(device: Any, by_supervisor: bool, wait_s: float = RESTART_WAIT_S) -> tuple[str, str]:
    """Close the device and bring it up again: by itself when no supervisor runs, else by the
    supervisor's next round (waited for, at most `wait_s`). Returns (outcome, fault): "online"
    and "" when it is back, else its device state and the fault in words."""
    try:
        device.close()
    except Exception as exc:
        log.warning("closing %s for a restart: %s", device.name, exc)
    if not by_supervisor:
        try:
            device.open()
        except Exception as exc:
            return "offline", str(exc)
    else:  # the supervisor sees it closed and reopens it at its next round (0.2 s)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if device.status().device.value not in ("offline", "no_device"):
                break
            time.sleep(0.1)
    status = device.status()
    if status.device.value in ("online", "busy"):
        return "online", ""
    if status.fault == "closed":  # the supervisor's back-off has not come round to it yet
        return status.device.value, "not reopened yet; the terminal keeps trying by itself"
    return status.device.value, status.fault or status.device.value
