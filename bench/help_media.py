"""Help-call video: offer-to-first-frame time, frame rate received, and the kiosk's CPU. Prints; never asserts.

    .venv/bin/python bench/help_media.py               # 5 calls at 640x480, 5 s of video each
    .venv/bin/python bench/help_media.py -n 10 --seconds 3 --width 320 --height 240

The kiosk side is HelpMedia reading the emulated IP camera through the real OpenCV driver
(MJPEG over loopback HTTP, 15 frames a second); the staff side is an aiortc peer in the
same process offering what the console's browser offers (video to receive, audio both
ways, silence). ICE is restricted to 127.0.0.1. For each call: the time from the offer to
the answer (ICE gathering included), from the offer to the first decoded frame, and the
frames a second received over `--seconds`. CPU is this process's (both peers, the camera
driver and the emulator), per second of video: an upper bound of what the kiosk spends.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aioice.ice
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

from devices.camera.driver import OpenCvCamera
from devices.camera.emulator import StreamingCameraEmulator
from kiosk.help_media import HelpMedia


class Bars:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height, self.n = width, height, 0

    def render(self) -> np.ndarray:
        self.n += 1
        x = (np.arange(self.width) + 4 * self.n) % 64
        row = np.stack([x * 4, 255 - x * 4, np.full(self.width, 90)], axis=1).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(row, (self.height, self.width, 3)))


async def one_call(media: HelpMedia, call_id: str, seconds: float) -> tuple[float, float, float]:
    """(answer s, first frame s, frames a second) of one call."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    pc.on("track", lambda track: track.kind == "video" and not video.done() and video.set_result(track))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    started = time.monotonic()
    answer = await asyncio.to_thread(media.answer, call_id, pc.localDescription.sdp)
    answered = time.monotonic() - started
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    track = await asyncio.wait_for(video, 20)
    await asyncio.wait_for(track.recv(), 20)
    first = time.monotonic() - started
    count, since = 0, time.monotonic()
    while time.monotonic() - since < seconds:
        await asyncio.wait_for(track.recv(), 5)
        count += 1
    fps = count / (time.monotonic() - since)
    await asyncio.to_thread(media.stop, call_id)
    await pc.close()
    return answered, first, fps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5, help="calls")
    parser.add_argument("--seconds", type=float, default=5.0, help="video received per call")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
    emulator = StreamingCameraEmulator(Bars(args.width, args.height), fps=15, width=args.width, height=args.height)
    emulator.start()
    camera = OpenCvCamera("camera", source=emulator.url, width=args.width, height=args.height, fps=15)
    camera.open()
    media = HelpMedia(lambda: camera, "", speaker="")
    results = []
    cpu_start, wall_start = time.process_time(), time.monotonic()
    try:
        for i in range(args.n):
            results.append(asyncio.run(one_call(media, f"bench-{i}", args.seconds)))
    finally:
        cpu = time.process_time() - cpu_start
        wall = time.monotonic() - wall_start
        media.close()
        camera.close()
        emulator.stop()
    answered, first, fps = (list(column) for column in zip(*results))
    print(f"help-call video {args.width}x{args.height}, camera at 15 fps, {args.n} calls")
    print(f"  threads left after close: {threading.active_count()}")
    print(f"  offer -> answer       median {statistics.median(answered) * 1000:7.1f} ms  max {max(answered) * 1000:7.1f} ms")
    print(f"  offer -> first frame  median {statistics.median(first) * 1000:7.1f} ms  max {max(first) * 1000:7.1f} ms")
    print(f"  frames a second received: median {statistics.median(fps):.1f}  min {min(fps):.1f}")
    print(f"  CPU of this process: {cpu / wall * 100:.0f} % of one core over {wall:.1f} s (both peers, camera, emulator)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
