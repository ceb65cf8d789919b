# SPDX-License-Identifier: GPL-3.0-or-later
"""Hardware-in-the-loop tests: scenario files run by pytest against the virtual glasses or a real device.

The pytest plugin (:mod:`.plugin`, registered through the ``pytest11`` entry point) collects
``scenarios/*.toml`` as test items. ``--glasses=sim`` (default) starts the virtual glasses for
each scenario; ``--glasses=tcp://HOST:PORT``, ``serial:///dev/...`` or ``labgrid:PLACE`` runs the
same scenarios against a real device. See docs/hil.md.
"""

from .scenario import Expectation, Scenario, ScenarioError, load_quarantine, load_scenario, missing_capabilities

__all__ = ["Expectation", "Scenario", "ScenarioError", "load_quarantine", "load_scenario", "missing_capabilities"]
