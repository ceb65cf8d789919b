# SPDX-License-Identifier: GPL-3.0-or-later
"""Flashing devices: signed bundles, pushed over SSH into A/B slots with health check and rollback.

* :mod:`.keys`    Ed25519 signing keys (``device keygen``)
* :mod:`.bundle`  build a signed bundle for a target (``device bundle``)
* :mod:`.ssh`     the OpenSSH client as a transport, and the device agent's verbs over it
* :mod:`.push`    chunk-deduplicated, resumable transfer and activation (``device push``)
* :mod:`.agent`   the self-contained device-side agent (copied to the device by push)
* :mod:`.health`  the on-device health check the agent runs in the new slot
* :mod:`.cli`     the ``device`` subcommand
"""
