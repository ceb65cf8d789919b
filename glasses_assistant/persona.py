# SPDX-License-Identifier: GPL-3.0-or-later
"""Personas: who the assistant is (prompt, speaking style, voice, language, allowed tools).

A persona is a TOML file::

    name = "guide"
    system_prompt = "You are a calm tour guide ..."
    style = "Be brief: one short sentence."      # appended to the prompt
    voice = "espeak-ng:en-gb"                     # "" = the [tts] voice; a Piper id / .onnx path
    language = "en"
    tools = ["time", "set_timer", ...]            # or ["all"] (the default)
    remote = "local"                              # optional: local | remote | escalate

Shipped personas live in ``glasses_assistant/personas``; the wearer's own in ``[persona] dir``
(a file there overrides a shipped one of the same name). A file with an error gives one line
naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .config import read_toml, shown
from .errors import ConfigError

ALL_TOOLS = "all"
_FIELDS = {"name", "system_prompt", "style", "voice", "language", "tools", "remote"}


class PersonaError(ConfigError):
    """A persona file that cannot be used (the message names the file and the field)."""


@dataclass(frozen=True)
class Persona:
    name: str
    system_prompt: str
    style: str = ""
    voice: str = ""
    """"" for the configured [tts] voice."""
    language: str = "en"
    tools: tuple[str, ...] = (ALL_TOOLS,)
    remote: str | None = None
    path: str = field(default="", compare=False)

    @property
    def prompt(self) -> str:
        """The system prompt the LLM gets: personality, then speaking style."""
        return f"{self.system_prompt.strip()} {self.style.strip()}".strip()

    def allows(self, tool: str) -> bool:
        return ALL_TOOLS in self.tools or tool in self.tools

    def describe(self) -> str:
        tools = "all" if ALL_TOOLS in self.tools else ", ".join(self.tools)
        return (f"{self.name}  ({self.path})\n  voice: {self.voice or '[tts] voice'}   language: {self.language}"
                f"   remote: {self.remote or '[remote] policy'}\n  prompt: {self.prompt}\n  tools: {tools}")


def shipped_dir() -> Path:
    return Path(str(resources.files("glasses_assistant").joinpath("personas")))


def load_persona(path: str | Path, known_tools: set[str] | None = None) -> Persona:
    """Read and check one persona file; :class:`PersonaError` (one line) if it is not usable."""
    path = Path(path).expanduser()
    # /dev/zero, a FIFO, a UTF-16 file or deep nesting: one line naming the file (see read_toml).
    data = read_toml(path, "persona", PersonaError)
    return persona_from_dict(data, str(path), known_tools)


def persona_from_dict(data: dict[str, Any], where: str, known_tools: set[str] | None = None) -> Persona:
    def bad(key: str, rule: str) -> PersonaError:
        return PersonaError(f"persona {where}: {key} {rule} (got {shown(data.get(key))})")

    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise PersonaError(f"persona {where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
    for key in ("name", "system_prompt"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise bad(key, "is required and must be a non-empty string")
    for key in ("style", "voice", "language", "remote"):
        if key in data and not isinstance(data[key], str):
            raise bad(key, "must be a string")
    tools = data.get("tools", [ALL_TOOLS])
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise bad("tools", "must be a list of tool names")
    for key in ("name", "system_prompt", "style", "voice", "language", "remote"):
        if "\x00" in data.get(key, ""):
            raise bad(key, "must not contain a NUL character")
    if known_tools is not None:
        for t in tools:
            if t != ALL_TOOLS and t not in known_tools:
                raise PersonaError(f"persona {where}: tools names an unknown tool {t!r} "
                                   f"(known: all, {', '.join(sorted(known_tools))})")
    remote = data.get("remote") or None
    if remote is not None and remote not in ("local", "remote", "escalate"):
        raise bad("remote", "must be local, remote or escalate")
    voice = data.get("voice", "").strip()
    own_file = voice and not voice.startswith("espeak-ng:") and voice.endswith(".onnx")
    if own_file and not Path(voice).expanduser().exists():
        raise bad("voice", "names a Piper .onnx file that does not exist")
    return Persona(name=data["name"].strip(), system_prompt=data["system_prompt"], style=data.get("style", ""),
                   voice=voice, language=data.get("language", "en") or "en", tools=tuple(tools), remote=remote,
                   path=where)


def persona_files(user_dir: str | Path | None) -> dict[str, Path]:
    """Persona name (file stem) -> file; the wearer's folder overrides the shipped one."""
    found: dict[str, Path] = {p.stem: p for p in sorted(shipped_dir().glob("*.toml"))}
    if user_dir:
        folder = Path(user_dir).expanduser()
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return found


def find_persona(name: str, user_dir: str | Path | None, known_tools: set[str] | None = None) -> Persona:
    """The persona called ``name`` (a file stem in the folders, or a path to a .toml)."""
    if name.endswith(".toml") or "/" in name:
        return load_persona(name, known_tools)
    files = persona_files(user_dir)
    key = name.strip().lower()
    if key not in files:
        raise PersonaError(f"no persona called {name!r} (have: {', '.join(sorted(files))})")
    return load_persona(files[key], known_tools)
