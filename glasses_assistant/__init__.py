# SPDX-License-Identifier: GPL-3.0-or-later
"""An on-device, offline voice assistant for smart camera glasses.

The voice loop: audio source -> Silero VAD + end-of-turn detection -> faster-whisper
-> llama.cpp (tokens streamed) -> phrase chunker -> Piper (per phrase) -> audio sink.
"""

__version__ = "0.1.0"
