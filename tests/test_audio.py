# SPDX-License-Identifier: GPL-3.0-or-later
"""WAV reading at any rate, width and channel count; sources and sinks; conversation trimming."""

from __future__ import annotations

import asyncio
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from glasses_assistant.audio.io import (
    BLOCK,
    SAMPLE_RATE,
    WavSink,
    WavSource,
    read_wav,
    resample,
    write_wav,
)
from glasses_assistant.conversation import Conversation
from glasses_assistant.errors import AudioError


def tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_raw_wav(path: Path, data: bytes, *, tag: int, channels: int, rate: int, bits: int) -> None:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_is_read_and_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    f = tmp_path / "t.wav"
    write_wav(f, tone(rate, 1.0), rate)
    audio, got_rate = read_wav(f)
    assert got_rate == rate
    out = resample(audio, rate, SAMPLE_RATE)
    assert abs(len(out) - SAMPLE_RATE) <= 2
    # The 440 Hz tone survives: its spectrum peaks at 440 Hz after resampling.
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(out) - 440) < 5


def test_stereo_24bit_and_float_are_read(tmp_path: Path) -> None:
    left, right = tone(48000), np.zeros(24000, np.float32)
    ints = (np.stack([left, right], 1).reshape(-1) * 8_388_607).astype(np.int32)
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    f = tmp_path / "s24.wav"
    write_raw_wav(f, data, tag=1, channels=2, rate=48000, bits=24)
    audio, rate = read_wav(f)
    assert rate == 48000 and audio.shape == (24000,)
    assert np.allclose(audio, left / 2, atol=1e-4)  # channels are averaged
    g = tmp_path / "f32.wav"
    write_raw_wav(g, tone(16000).astype("<f4").tobytes(), tag=3, channels=1, rate=16000, bits=32)
    audio, _ = read_wav(g)
    assert np.allclose(audio, tone(16000), atol=1e-6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"hello, this is text and not audio at all", "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "no fmt chunk"),
    ],
)
def test_unreadable_wavs_give_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.wav"
    f.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        read_wav(f)
    assert "\n" not in str(err.value)
    with pytest.raises(AudioError, match="cannot read WAV file"):
        read_wav(tmp_path / "nope.wav")


def test_truncated_wav_keeps_what_is_there(tmp_path: Path) -> None:
    f = tmp_path / "t.wav"
    write_wav(f, tone(16000, 1.0), 16000)
    f.write_bytes(f.read_bytes()[:-5001])  # cut mid-sample
    audio, _ = read_wav(f)
    assert 13000 < len(audio) < 16000


def test_unsupported_encoding(tmp_path: Path) -> None:
    f = tmp_path / "alaw.wav"
    write_raw_wav(f, b"\x00" * 100, tag=6, channels=1, rate=8000, bits=8)
    with pytest.raises(AudioError, match="format 6 .* not supported"):
        read_wav(f)


def test_wav_source_delivers_16k_blocks_with_trailing_silence(tmp_path: Path) -> None:
    f = tmp_path / "t.wav"
    write_wav(f, tone(48000, 1.0), 48000)

    async def collect() -> list:
        return [c async for c in WavSource([f], realtime=False, gap_s=0.5, lead_s=0.0).chunks()]

    chunks = asyncio.run(collect())
    assert all(c.samples.shape == (BLOCK,) and c.sample_rate == SAMPLE_RATE for c in chunks)
    total = len(chunks) * BLOCK
    assert 1.5 * SAMPLE_RATE <= total < 1.5 * SAMPLE_RATE + BLOCK
    assert np.abs(chunks[-1].samples).max() == 0.0  # the gap after the file is silence


def test_wav_sink_resamples_to_its_first_rate(tmp_path: Path) -> None:
    sink = WavSink(tmp_path / "out.wav")

    async def go() -> None:
        await sink.write(tone(22050), 22050)
        await sink.write(tone(16000), 16000)
        await sink.close()

    asyncio.run(go())
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 1
        assert abs(w.getnframes() - 22050) <= 2


def test_conversation_never_overflows_the_context() -> None:
    conv = Conversation("system prompt", history_turns=6, context=256, max_tokens=60)

    def count(msgs: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) + 4 for m in msgs)

    for i in range(20):
        conv.add(f"question {i} " * 5, f"answer {i} " * 10)
    msgs = conv.messages("what now?", count)
    assert count(msgs) <= 256 - 60 - 8
    assert msgs[0]["role"] == "system" and msgs[-1]["content"] == "what now?"
    assert "answer 19" in msgs[-2]["content"]  # the newest exchanges are the ones kept
    assert len(conv.exchanges) <= 24  # memory stays bounded too
    long_question = "word " * 1000
    msgs = conv.messages(long_question, count)
    assert count(msgs) <= 256 - 60 - 8 and len(msgs) == 2


def test_interrupted_reply_is_marked_in_history() -> None:
    conv = Conversation("s", history_turns=2, context=4096, max_tokens=60)
    conv.add("tell me a story", "Once upon a", interrupted=True)
    msgs = conv.messages("next", lambda m: 10)
    assert msgs[2] == {"role": "assistant", "content": "Once upon a …"}
