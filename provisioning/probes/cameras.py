"""Cameras: /dev/video* nodes that OpenCV opens and grabs a frame from, and camera URLs.

A USB camera makes two or more video nodes; only one gives pictures (the others carry
metadata), so a node that opens but gives no frame is skipped quietly. A node another
program holds (the running kiosk) is reported with that program. The frame is looked
at for its size only and dropped: it may show a citizen.
"""
from __future__ import annotations

import glob
import re
import threading
from typing import Any

from provisioning.probes import Finding, Problem, Results, holders, stable_name

STABLE_FOLDERS = ("/dev/v4l/by-id", "/dev/v4l/by-path")


def candidate_devices() -> list[str]:
    def number(path: str) -> int:
        match = re.search(r"(\d+)$", path)
        return int(match.group(1)) if match else -1

    return sorted(glob.glob("/dev/video*"), key=number)


def grab_size(source: str, timeout: float) -> tuple[tuple[int, int] | None, str]:
    """((width, height), "") of the first frame from `source`, or (None, why not). A V4L2
    call that hangs is abandoned after `timeout` (its thread is left to finish)."""
    import cv2

    result: dict[str, Any] = {}

    def work() -> None:
        try:
            if source.startswith("/dev/"):
                cap = cv2.VideoCapture(source, cv2.CAP_V4L2)
            else:
                ms = int(timeout * 1000)
                cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        except cv2.error as exc:
            result["why"] = f"OpenCV cannot open it ({exc.err})"
            return
        try:
            if not cap.isOpened():
                result["why"] = "it does not open"
                return
            for _ in range(3):  # the first reads of some cameras come back empty
                ok, frame = cap.read()
                if ok and frame is not None and frame.size:
                    result["size"] = (int(frame.shape[1]), int(frame.shape[0]))
                    return
            result["why"] = "it opens but gives no picture"
        finally:
            cap.release()

    thread = threading.Thread(target=work, name=f"camera-probe-{source}", daemon=True)
    thread.start()
    thread.join(timeout * 2 + 1)
    if thread.is_alive():
        return None, f"no picture within {timeout * 2 + 1:g} s"
    return result.get("size"), result.get("why", "")


def _shown(source: str) -> str:
    from devices.camera.driver import shown_source

    return shown_source(source)


def probe(devices: list[str], urls: list[str], timeout: float) -> tuple[Results, list[str]]:
    """Cameras that give a picture; and the --camera URLs that gave none (for detect's exit code)."""
    results = Results()
    failed_urls: list[str] = []
    held = holders(devices) if devices else {}
    for device in devices:
        size, why = grab_size(device, timeout)
        if size is None:
            users = held.get(device) or []
            if users:
                results.problems.append(Problem("camera", device, (
                    f"in use by {', '.join(map(str, users))}: if that is the running kiosk, stop it with "
                    "`systemctl stop kiosk` and run detect again")))
            continue  # a metadata node, or not a camera that works: nothing to configure
        source = stable_name(device, STABLE_FOLDERS)
        results.findings.append(Finding("camera", "camera", "opencv", {"source": source}, device,
                                        f"OpenCV (V4L2) opens it and grabbed a {size[0]}x{size[1]} picture",
                                        facts={"width": size[0], "height": size[1]}))
    for url in urls:
        size, why = grab_size(url, timeout)
        if size is None:
            failed_urls.append(url)
            results.problems.append(Problem("camera", _shown(url), (
                f"no picture from this camera ({why}): check the URL, that the camera is powered and on the "
                "network, and its user name and password")))
            continue
        results.findings.append(Finding("camera", "camera", "opencv", {"source": url}, _shown(url),
                                        f"OpenCV (FFmpeg) opens the stream and grabbed a {size[0]}x{size[1]} picture",
                                        facts={"width": size[0], "height": size[1]}))
    return results, failed_urls


def pick_document_camera(findings: list[Finding]) -> None:
    """With two cameras or more, the one with the largest picture is most likely the document
    camera (高拍仪: several megapixels) and the others face cameras: suggest it as the scanner
    with the document_camera driver (likely, not certain: the technician checks which is which)."""
    cams = [f for f in findings if f.device_class == "camera"]
    if len(cams) < 2:
        return

    def area(f: Finding) -> int:
        return int(f.facts.get("width", 0)) * int(f.facts.get("height", 0))

    biggest = max(cams, key=area)
    if area(biggest) <= min(area(f) for f in cams if f is not biggest):
        return  # all the same size: no telling which is which
    biggest.device_class, biggest.driver, biggest.confidence = "scanner", "document_camera", "likely"
    biggest.evidence += ("; the largest picture of the cameras found, so most likely the document camera "
                         "(高拍仪): if it is the face camera, swap the two sources in the config")
