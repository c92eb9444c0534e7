"""Pure parts of api/streams.py: stdcopy framing and the thread-to-stream bridge."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from dockyard.api.streams import (
    ConsumerGone,
    StdcopyDecoder,
    bytes_from_thread,
    error_message,
    iter_stdcopy,
    iterate_in_thread,
    json_message,
    stdcopy_frame,
)


def test_frame_layout_matches_docker():
    # Real bytes from `docker run --rm bb echo hi`.
    assert stdcopy_frame(1, b"hi\n") == bytes.fromhex("0100000000000003") + b"hi\n"
    assert stdcopy_frame(2, b"err1\n") == bytes.fromhex("0200000000000005") + b"err1\n"
    assert stdcopy_frame(1, b"") == b""


@pytest.mark.parametrize("seed", range(5))
def test_decoder_reassembles_frames_from_any_split(seed):
    rng = random.Random(seed)
    frames = [(rng.choice((1, 2)), os.urandom(rng.randint(1, 5000))) for _ in range(50)]
    wire = b"".join(stdcopy_frame(s, p) for s, p in frames)
    decoder = StdcopyDecoder()
    got = []
    pos = 0
    while pos < len(wire):
        step = rng.randint(1, 700)
        got.extend(decoder.feed(wire[pos:pos + step]))
        pos += step
    assert got == frames
    assert decoder.pending == 0


def test_decoder_rejects_garbage_and_reports_truncation():
    with pytest.raises(ValueError, match="not a stdcopy stream"):
        StdcopyDecoder().feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ValueError, match="ended inside a frame"):
        list(iter_stdcopy(iter([stdcopy_frame(1, b"hello")[:-2]])))


def test_json_messages_end_with_crlf():
    assert json_message({"status": "sha256:ab"}) == b'{"status":"sha256:ab"}\r\n'
    assert error_message("bad", 3) == {"errorDetail": {"message": "bad", "code": 3}, "error": "bad"}


def test_iterate_in_thread_yields_items_and_reraises():
    def producer(put):
        for i in range(20):
            put(i)
        raise ValueError("producer failed")

    async def consume():
        got = []
        with pytest.raises(ValueError, match="producer failed"):
            async for item in iterate_in_thread(producer, max_pending=2):
                got.append(item)
        return got

    assert asyncio.run(consume()) == list(range(20))


def test_iterate_in_thread_stops_the_producer_when_the_consumer_leaves():
    seen = {}

    def producer(put):
        try:
            for i in range(10_000):
                put(i)
        except ConsumerGone:
            seen["stopped"] = True
            raise
        seen["finished"] = True

    async def consume():
        gen = iterate_in_thread(producer, max_pending=2)
        async for item in gen:
            if item == 5:
                break
        await gen.aclose()

    asyncio.run(consume())
    assert seen == {"stopped": True}


def test_bytes_from_thread_gathers_small_writes():
    def producer(f):
        for _ in range(4096):
            f.write(b"x" * 512)  # a tar writer's record size

    async def consume():
        return [piece async for piece in bytes_from_thread(producer)]

    pieces = asyncio.run(consume())
    assert b"".join(pieces) == b"x" * (4096 * 512)
    assert len(pieces) <= 9
