# SPDX-License-Identifier: GPL-3.0-or-later
"""One-line deploy errors; the CLI prints them as ``glasses-assistant: error: ...`` and exits 2."""

from __future__ import annotations

from ..errors import AssistantError


class DeployError(AssistantError):
    """Building, pushing or activating a bundle failed."""

    code = "deploy"


class KeyFileError(DeployError):
    """A key file is missing, unreadable or not an Ed25519 key."""

    code = "deploy-key"


class RefusedError(DeployError):
    """The device (or the host, checking first) refused the bundle or image.

    ``reason`` is the agent's code: bad-signature, unknown-key, tampered, downgrade,
    incompatible, ...
    """

    code = "deploy-refused"

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class TransferError(DeployError):
    """The SSH connection failed or was cut; running the same push again resumes."""

    code = "deploy-transfer"


class HealthCheckError(DeployError):
    """The new slot failed its health check (the device rolled back)."""

    code = "deploy-health"
