# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors the assistant reports to a person as one clear line.

Each error carries a stable ``code`` (which stage or resource failed) so the CLI,
the logs and the tests can tell failures apart without parsing messages, in the
spirit of Home Assistant's assist_pipeline ``error.py``.
"""

from __future__ import annotations


class AssistantError(Exception):
    """A failure explained in one line, meant to be shown to the user as is."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(AssistantError):
    """A configuration value or flag is invalid."""

    code = "config"


class ModelError(AssistantError):
    """A model is missing, corrupt, fails its sha256 or is of the wrong kind."""

    code = "model"


class AudioError(AssistantError):
    """An audio file cannot be read, or an audio device is missing."""

    code = "audio"


class AudioDeviceError(AudioError):
    """No usable microphone or speaker."""

    code = "audio-device"


class ModelMissingError(ModelError):
    """A model's files are not in the cache (not fetched yet)."""

    code = "model-missing"
