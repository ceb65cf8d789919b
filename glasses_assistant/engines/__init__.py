# SPDX-License-Identifier: GPL-3.0-or-later
"""Thin, synchronous wrappers over the model libraries.

Each engine is called from one worker thread of its own (never from the asyncio
event loop); lazy generators such as faster-whisper's segments are drained inside
that worker. Engines check a cancel flag between tokens, segments and phrases.
"""
