# SPDX-License-Identifier: GPL-3.0-or-later
"""Tools the assistant calls on an intent: :mod:`.runner` for the flow, :mod:`.registry` for the calls,
:mod:`.handlers` for what each tool does."""

from .registry import TOOLS, ToolCallError, call_schema, validate

__all__ = ["TOOLS", "ToolCallError", "call_schema", "validate"]
