"""A real network stream on loopback: ffmpeg serves the clip over HTTP (MPEG-TS), is cut and restored."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from clips import CLIP_FRAMES, count_frames
from rich.console import Console

from app.pipeline import StreamSettings
from app.run import RunOptions, run

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg): needed to serve a loopback stream"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    """True when a socket listens on 127.0.0.1:port (read from /proc, so the one-client server is not consumed)."""
    with open("/proc/net/tcp") as table:
        return any(f":{port:04X} " in line and line.split()[3] == "0A" for line in table.readlines()[1:])


def serve(clip: Path, port: int) -> subprocess.Popen:
    """ffmpeg paced at the clip's rate (-re), one HTTP client, MPEG-2 in MPEG-TS."""
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c:v", "mpeg2video", "-q:v", "4",
         "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/stream.ts"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not listening(port):
        assert time.monotonic() < deadline and server.poll() is None, "ffmpeg did not start listening"
        time.sleep(0.02)
    return server


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cut_after(path: Path, count: int, server: subprocess.Popen, restore=None) -> threading.Thread:
    """Kill the server once `count` results are written; then call `restore` (e.g. start a new server)."""

    def choreography():
        deadline = time.monotonic() + 20
        while len(lines_of(path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()
        server.wait()
        if restore:
            time.sleep(0.5)
            restore()

    thread = threading.Thread(target=choreography, daemon=True)
    thread.start()
    return thread


def test_stream_reconnects_after_a_cut(tmp_path, tiny_onnx, clip):
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.ts"
    servers = [serve(clip, port)]
    jsonl, video = tmp_path / "s.jsonl", tmp_path / "s.mp4"
    thread = cut_after(jsonl, 10, servers[0], restore=lambda: servers.append(serve(clip, port)))
    try:
        options = RunOptions(tiny_onnx, [url], save=video, jsonl=jsonl, stream=StreamSettings(live=False, reconnect_timeout=3))
        log = io.StringIO()
        stats = run(options, Console(file=log, width=200)).sources[0]
    finally:
        thread.join(timeout=5)
        for server in servers:
            server.kill()
    # Lost for good after the restored server ended; one reconnect in between, with its gap measured.
    assert stats.state == "lost" and stats.reconnects == 1 and 0.3 < stats.gap_s < 5
    before_cut = int(re.search(r"no frame after frame (\d+); reconnecting", log.getvalue()).group(1))
    lines = lines_of(jsonl)  # every line parses
    frames = [line["frame"] for line in lines]
    assert len(lines) == stats.processed and frames == list(range(len(frames)))
    assert before_cut >= 10 and len(lines) >= before_cut + 10  # frames from both connections
    assert count_frames(video) == len(lines)


def test_stream_ends_cleanly_without_reconnect(tmp_path, tiny_onnx, clip):
    port = free_port()
    server = serve(clip, port)
    jsonl, video = tmp_path / "s.jsonl", tmp_path / "s.mp4"
    thread = cut_after(jsonl, 5, server)
    try:
        stats = run(RunOptions(tiny_onnx, [f"http://127.0.0.1:{port}/stream.ts"], save=video, jsonl=jsonl,
                               stream=StreamSettings(reconnect_timeout=0)))
    finally:
        thread.join(timeout=5)
        server.kill()
    source = stats.sources[0]
    assert source.state == "ended" and not source.failed and source.reconnects == 0
    assert 5 <= len(lines_of(jsonl)) == source.processed < CLIP_FRAMES
    assert count_frames(video) >= 1
