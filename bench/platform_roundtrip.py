"""Signed submission round trip against the reference platform on loopback.

Starts `python -m govplatform serve` on 127.0.0.1 (free port, temporary data dir), enrols a
terminal, then submits N applications one after another, each with a fresh idempotency
key, exactly as a kiosk does (JSON body, SM2 signature, Idempotency-Key). Prints the
median and p95 round trip, requests per second, and how much of a round trip is SM2
signing (client) and verifying (server, measured here on the same messages).

    .venv/bin/python bench/platform_roundtrip.py [-n 200] [--algorithm sm2-sm3|ecdsa-p256-sha256]

Prints figures only; asserts nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from govapi.signing import KeyPair, check_headers, sign_headers


def start(data_dir: Path, algorithms: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVPLATFORM_")}
    env.update(GOVPLATFORM_DATA_DIR=str(data_dir), GOVPLATFORM_SIGNATURE_ALGORITHMS=algorithms,
               GOVPLATFORM_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "govplatform", "serve", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"platform did not start: {line!r}; see {data_dir / 'server.log'}")
    url = match.group(1)
    for _ in range(100):
        try:
            if requests.get(url + "/v1/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    return proc, url


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the platform this bench started (that process only)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--algorithm", default="sm2-sm3", choices=["sm2-sm3", "ecdsa-p256-sha256"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="govplatform-bench-") as tmp:
        data_dir = Path(tmp)
        proc, url = start(data_dir, "sm2-sm3,ecdsa-p256-sha256")
        try:
            from govplatform.catalogue import load_catalogue
            from govplatform.runtime import Platform, issue_enrolment_code
            from govplatform.settings import Settings

            platform = Platform.open(Settings(data_dir=data_dir), migrate=False)
            code = issue_enrolment_code(platform, "T-BENCH")[0]
            platform.db.dispose()
            keys = KeyPair.generate(args.algorithm)
            resp = requests.post(url + "/v1/terminals/enrol", timeout=10, json={
                "enrolment_code": code, "terminal_id": "T-BENCH", "algorithm": keys.algorithm,
                "public_key": keys.public_key, "location": "bench"})
            resp.raise_for_status()

            item = next(i for i in load_catalogue()["items"] if i["kind"] == "certificate")
            samples = {"identity.name": "张三", "identity.id_number": "110101199003070011"}
            answers = {f["key"]: (f["choices"][0]["value"] if f["type"] == "choice" else
                                  samples.get(f["source"], {"date": "2025-03-01", "phone": "13800000011",
                                                            "number": "1"}.get(f["type"], "测试")))
                       for f in item["form"]}
            # one scanned page, uploaded once, named by every submission (scans are stored by content)
            from kiosk.govclient import PlatformClient

            page = b"\xff\xd8\xff\xe0" + b"bench scan" * 100 + b"\xff\xd9"
            reference = PlatformClient(url, "T-BENCH", keys).put_scan(page, "image/jpeg")["reference"]
            materials = [{"id": m["id"], "provided": "scan", "reference": reference} for m in item["materials"]]
            session = requests.Session()
            round_trips: list[float] = []
            signing: list[float] = []
            messages: list[tuple[dict[str, str], bytes]] = []
            started = time.perf_counter()
            for _ in range(args.n):
                body = json.dumps({
                    "item_id": item["id"], "visit_id": f"visit-{uuid.uuid4().hex[:12]}",
                    "citizen": {"id_number": "110101199003070011", "name": "张三"}, "answers": answers,
                    "materials": materials, "submitted_at": dt.datetime.now(dt.UTC).isoformat(),
                }, ensure_ascii=False).encode("utf-8")
                t0 = time.perf_counter()
                headers = sign_headers(keys, "T-BENCH", "POST", "/v1/applications", body)
                t1 = time.perf_counter()
                headers.update({"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
                r = session.post(url + "/v1/applications", data=body, headers=headers, timeout=30)
                t2 = time.perf_counter()
                if r.status_code != 201:
                    raise SystemExit(f"submission refused: {r.status_code} {r.text}")
                signing.append((t1 - t0) * 1000)
                round_trips.append((t2 - t0) * 1000)
                messages.append((headers, body))
            elapsed = time.perf_counter() - started

            verifying: list[float] = []
            lookup = {"T-BENCH": (keys.algorithm, keys.public_key)}.get
            for headers, body in messages[:50]:
                t0 = time.perf_counter()
                check_headers(headers, "POST", "/v1/applications", body, lookup, now=float(headers["X-Timestamp"]))
                verifying.append((time.perf_counter() - t0) * 1000)
        finally:
            stop(proc)

    median, p95 = statistics.median(round_trips), percentile(round_trips, 0.95)
    sign_ms, verify_ms = statistics.median(signing), statistics.median(verifying)
    print(f"platform round trip, {args.n} sequential signed submissions ({args.algorithm}, loopback, SQLite):")
    print(f"  round trip   median {median:7.1f} ms   p95 {p95:7.1f} ms   {args.n / elapsed:6.1f} requests/s")
    print(f"  sign (client)  median {sign_ms:6.1f} ms  = {100 * sign_ms / median:4.1f} % of a round trip")
    print(f"  verify (server) median {verify_ms:6.1f} ms  = {100 * verify_ms / median:4.1f} % of a round trip")
    print(f"  everything else (HTTP, validation, database) ~ {median - sign_ms - verify_ms:6.1f} ms")


if __name__ == "__main__":
    main()
