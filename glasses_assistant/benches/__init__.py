# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's benchmarks, each run on the real models through the real loop.

* :mod:`.latency`: voice-to-voice latency (`glasses-assistant bench`), streaming against the
  plain sequential pipeline, with ablations and barge-in stop times;
* :mod:`.tools`: how the tool call is chosen (`glasses-assistant tools bench`);
* :mod:`.translate`: translation quality (chrF) and latency (`glasses-assistant translate-bench`).

They sit above the composition root: each assembles a whole :class:`~..pipeline.Assistant`.
"""
