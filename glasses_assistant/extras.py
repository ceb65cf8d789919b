# SPDX-License-Identifier: GPL-3.0-or-later
"""Optional parts of the install (pip extras): one line naming the extra when one is missing.

A device install is ``pip install glasses-assistant``: the runtime only. What only the
benchmarks need (sacrebleu for chrF, matplotlib for the waterfall picture) is the ``bench``
extra, so a missing package is not a traceback but a sentence saying which extra brings it.
"""

from __future__ import annotations

import importlib.util
import logging

from .errors import AssistantError

log = logging.getLogger(__name__)


class MissingExtraError(AssistantError):
    """A command needs a package of an extra that is not installed."""

    code = "missing-extra"


def missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def hint(module: str, extra: str, what: str) -> str:
    """``translate-bench needs sacrebleu, from the 'bench' extra: pip install 'glasses-assistant[bench]'``."""
    return (f"{what} needs {module}, from the '{extra}' extra: pip install 'glasses-assistant[{extra}]' "
            f"(in a checkout, `make` installs it)")


def require(module: str, extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` (one line) when ``module`` is not installed."""
    if missing(module):
        raise MissingExtraError(hint(module, extra, what))
