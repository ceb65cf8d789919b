# SPDX-License-Identifier: GPL-3.0-or-later
"""glasses-sim with two extra knobs the harness needs and the simulator lacks (yet).

``--hide camera|speaker|buttons`` leaves that feature out of the device's Hello, so the
capability skip of a scenario is exercised against a real handshake; ``--temperature C``
starts the device warm, so a thermal warning is reported within the first telemetry
(the simulator's own thermal model needs minutes of camera use to get there).

Run as ``python -m glasses_assistant.hil.simext [--hide X] [--temperature C] SIM-ARGS...``.
Once glasses-sim grows these flags itself this module can go.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from firmware_bridge import sim as _sim
from firmware_bridge.messages import Feature

_FEATURES = {"camera": Feature.CAMERA, "speaker": Feature.SPEAKER, "buttons": Feature.BUTTONS}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--hide", action="append", default=[], choices=sorted(_FEATURES))
    p.add_argument("--temperature", type=float, default=None)
    ours, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    hidden = 0
    for name in ours.hide:
        hidden |= _FEATURES[name]
    hello, init = _sim.GlassesSim._hello, _sim.GlassesSim.__init__

    def _hello(self):
        h = hello(self)
        return dataclasses.replace(h, features=h.features & ~hidden)

    def __init__(self, config):
        init(self, config)
        if ours.temperature is not None:
            self.temperature = ours.temperature

    _sim.GlassesSim._hello = _hello  # type: ignore[method-assign]  # deliberate patch, see the module docstring
    _sim.GlassesSim.__init__ = __init__  # type: ignore[method-assign]  # deliberate patch, as above
    return _sim.main(rest)


if __name__ == "__main__":
    sys.exit(main())
