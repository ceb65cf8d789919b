# SPDX-License-Identifier: GPL-3.0-or-later
"""Device links other than our own bridge protocol: glasses people can buy (see docs/brilliant.md)."""
