"""FrameHub: which frame the engine gets next (fair rounds, freshest live frame first, a short wait for a
fresher one) and the file policy (every frame, in order)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

from app.capture import Frame, FrameHub
from app.stats import SourceStats

IMAGE = np.zeros((2, 2, 3), np.uint8)


def hub_of(*sources: tuple[bool, float | None], capacity: int = 8) -> FrameHub:
    """A hub over fake sources given as (live, fps)."""
    fakes = [SimpleNamespace(live=live, fps=fps) for live, fps in sources]
    return FrameHub(fakes, [SourceStats(f"s{i}", live) for i, (live, _) in enumerate(sources)], capacity)


def put(hub: FrameHub, source_id: int, index: int, age_s: float = 0.0) -> None:
    hub.put(Frame(IMAGE, source_id, index, time.perf_counter() - age_s), lambda: False)


def take_one(hub: FrameHub) -> Frame:
    [frame] = hub.take(1, lambda: False)
    return frame


def test_live_sources_get_one_frame_per_round_freshest_first():
    hub = hub_of((True, None), (True, None), (True, None))
    order = []
    for round_ in range(4):
        for source_id, age in ((0, 0.010), (1, 0.002), (2, 0.006)):  # source 1 always the freshest
            put(hub, source_id, round_, age)
        for _ in range(3):
            order.append(take_one(hub).source_id)
            for source_id in range(3):  # every source has a newer frame again before each take
                if not hub.buffers[source_id]:
                    put(hub, source_id, 99, {0: 0.010, 1: 0.002, 2: 0.006}[source_id])
    assert order == [1, 2, 0] * 4  # fair: once per round; in a round by freshness
    assert [hub.stats[i].dropped for i in range(3)] == [3, 3, 3]  # the newer frames replaced unread ones


def test_a_source_without_frames_does_not_hold_up_the_others():
    hub = hub_of((True, None), (True, None))
    taken = []
    for index in range(4):
        put(hub, 0, index)
        taken.append(take_one(hub).source_id)
    assert taken == [0, 0, 0, 0]


def test_files_keep_every_frame_in_order_one_per_source_per_round():
    hub = hub_of((False, 30.0), (False, 30.0))
    for index in range(3):
        put(hub, 0, index, age_s=1.0)  # old frames: a file never waits for fresher ones
        put(hub, 1, index, age_s=1.0)
    start = time.perf_counter()
    frames = [take_one(hub) for _ in range(6)]
    assert time.perf_counter() - start < 0.04  # no wait (the stale-frame wait alone would take 50 ms)
    assert [(f.source_id, f.index) for f in frames] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]


def test_a_stale_live_frame_waits_for_the_next_one():
    hub = hub_of((True, 10.0))  # 100 ms between frames
    put(hub, 0, 0, age_s=0.060)  # older than half an interval: the next is due in ~30 ms
    threading.Timer(0.02, put, (hub, 0, 1)).start()
    start = time.perf_counter()
    frame = take_one(hub)
    assert frame.index == 1 and 0.015 < time.perf_counter() - start < 0.09


def test_a_late_source_gives_up_its_wait_and_the_stale_frame_goes():
    hub = hub_of((True, 10.0))
    put(hub, 0, 0, age_s=0.070)  # next due in 30 ms, +50 ms of slack: at most ~80 ms
    start = time.perf_counter()
    frame = take_one(hub)
    waited = time.perf_counter() - start
    assert frame.index == 0 and 0.06 < waited < 0.15


def test_fresh_frames_and_unknown_rates_are_taken_at_once():
    for fps, age in ((10.0, 0.030), (None, 5.0)):  # younger than half an interval; a pace nobody knows
        hub = hub_of((True, fps))
        put(hub, 0, 0, age_s=age)
        start = time.perf_counter()
        assert take_one(hub).index == 0 and time.perf_counter() - start < 0.04  # a wait would take >= 50 ms


def test_an_ended_source_is_not_waited_on():
    hub = hub_of((True, 10.0))
    put(hub, 0, 0, age_s=0.070)  # stale, but its source has ended: no fresher frame will come
    hub.close(0)
    start = time.perf_counter()
    assert take_one(hub).index == 0 and time.perf_counter() - start < 0.04  # a wait would take >= 60 ms
