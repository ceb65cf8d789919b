"""Tools the assistant calls on an intent: see :mod:`.runner` for the flow, :mod:`.registry` for the calls."""

from .registry import TOOLS, ToolCallError, call_schema, validate
from .runner import Decision, ToolRunner, choose_with_llm

__all__ = ["TOOLS", "Decision", "ToolCallError", "ToolRunner", "call_schema", "choose_with_llm", "validate"]
