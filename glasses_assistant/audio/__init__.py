# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio sources and sinks, resampling and voice activity detection."""

from .io import (
    BLOCK,
    SAMPLE_RATE,
    AudioChunk,
    AudioSink,
    AudioSource,
    MicrophoneSource,
    SpeakerSink,
    TeeSink,
    WavSink,
    WavSource,
    read_wav,
    resample,
    write_wav,
)

__all__ = [
    "BLOCK", "SAMPLE_RATE", "AudioChunk", "AudioSink", "AudioSource", "MicrophoneSource",
    "SpeakerSink", "TeeSink", "WavSink", "WavSource", "read_wav", "resample", "write_wav",
]
