# SPDX-License-Identifier: GPL-3.0-or-later
"""``--glasses=labgrid:PLACE``: the device's bridge URL from labgrid's coordinator.

A rack of glasses is run the way labgrid runs any rack: an exporter on each bench host
exports the glasses' link (a ``NetworkSerialPort`` with ``protocol: raw`` for a bridge
on TCP, or a ``USBSerialPort`` / ``RawSerialPort`` for a serial one), the coordinator groups
them into places, and a CI job acquires a place (``labgrid-client -p PLACE acquire``) and
runs the scenarios against it. Nothing here schedules; labgrid does. See docs/hil.md.

labgrid is optional (``pip install 'glasses-assistant[hil]'``); without it this module
gives one line saying so.
"""

from __future__ import annotations

import logging
import os
from typing import Any


class LabgridError(RuntimeError):
    """One line: why the device's URL could not be had from labgrid."""


def url_from_resource(resource: Any) -> str | None:
    """The bridge URL for one labgrid resource, or None for a resource that is not a link."""
    cls = type(resource).__name__
    if cls == "NetworkSerialPort":
        if getattr(resource, "protocol", "rfc2217") != "raw":
            raise LabgridError(
                f"NetworkSerialPort {resource.host}:{resource.port} uses {resource.protocol}; the glasses' "
                "bridge needs protocol: raw in the exporter config")
        return f"tcp://{resource.host}:{resource.port}"
    if cls in ("USBSerialPort", "RawSerialPort") and getattr(resource, "port", None):
        return f"serial://{resource.port}"
    if cls == "NetworkService" and getattr(resource, "port", None):
        return f"tcp://{resource.address}:{resource.port}"
    return None


def resolve(spec: str, **kw: Any) -> str:
    """``labgrid:PLACE`` (or ``labgrid:`` with ``--lg-env``) -> ``tcp://...`` / ``serial://...``."""
    # labgrid logs its own copy of a failure ("ERROR:root:coordinator is unavailable ..."); ours is the one line.
    logging.disable(logging.ERROR)
    try:
        return _resolve(spec, **kw)
    finally:
        logging.disable(logging.NOTSET)


def _resolve(spec: str, *, lg_env: str | None = None, coordinator: str | None = None, role: str = "main") -> str:
    place = spec.split(":", 1)[1] if ":" in spec else ""
    try:
        from labgrid import Environment, Target
        from labgrid.factory import target_factory
    except ImportError:
        raise LabgridError(
            "--glasses=labgrid:... needs labgrid: pip install 'glasses-assistant[hil]' (or pip install labgrid)"
        ) from None
    if coordinator:
        os.environ["LG_COORDINATOR"] = coordinator
    env = None
    where = f"labgrid place {place!r}" if place else f"labgrid environment {lg_env}"
    try:
        if lg_env:
            env = Environment(config_file=lg_env)
            target = env.get_target(role)
            if target is None:
                raise LabgridError(f"{lg_env} has no target {role!r}")
        elif place:
            target = Target(place)
            target_factory.make_resource(target, "RemotePlace", place, {})
        else:
            raise LabgridError("--glasses=labgrid: needs a place name (labgrid:PLACE) or --lg-env FILE")
        for resource in target.resources:
            url = url_from_resource(resource)
            if url:
                return url
        names = ", ".join(type(r).__name__ for r in target.resources) or "none"
        raise LabgridError(f"{where} has no glasses link (NetworkSerialPort raw / USBSerialPort); resources: {names}")
    except LabgridError:
        raise
    except Exception as err:  # labgrid raises many kinds: connection refused, no such place, bad YAML
        reason: BaseException = err
        while reason.__cause__ is not None and "failed to create" in str(reason):
            reason = reason.__cause__  # labgrid's factory wraps the real reason
        msg = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        if "coordinator" in msg.lower():
            addr = os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
            if lg_env and env is not None:
                try:
                    addr = env.config.get_option("coordinator_address", addr)
                except Exception:
                    pass
            msg = f"cannot reach the labgrid coordinator at {addr} (start it, or set LG_COORDINATOR / --lg-coordinator)"
        raise LabgridError(f"{where}: {msg}") from None
