# SPDX-License-Identifier: GPL-3.0-or-later
"""Ed25519 signing keys for bundles and firmware images (``device keygen``).

Files: ``NAME.key`` is the private key (PKCS#8 PEM, mode 0600, never leaves the build
machine); ``NAME.pub`` is one line ``ed25519 <64 hex digits> NAME`` that devices and the
virtual glasses trust. A key is named by its *key id*, the first 16 hex digits of the
sha256 of the raw public key.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..safefile import read_limited
from .agent import AgentError, key_id, parse_public_key
from .errors import KeyFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key and its public half."""

    private: Ed25519PrivateKey  # cryptography is imported lazily, at run time only where keys are used
    public_raw: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def sign_b64(self, data: bytes) -> str:
        return base64.b64encode(self.sign(data)).decode()


def public_line(raw: bytes, comment: str) -> str:
    return f"ed25519 {raw.hex()} {comment}\n"


def generate(out: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``out.key`` and ``out.pub``; refuses to overwrite an existing key unless asked."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path, pub_path = out.with_name(out.name + ".key"), out.with_name(out.name + ".pub")
    if key_path.exists() and not overwrite:
        raise KeyFileError(f"{key_path} exists; refusing to overwrite a signing key (use --force)")
    out.parent.mkdir(parents=True, exist_ok=True)
    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # Created 0600 from the start: a private key must never be world-readable, even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(public_line(raw, out.name))
    return key_path, pub_path


KEY_FILE_LIMIT = 64 * 1024
"""A PEM or .pub key is a few hundred bytes; a bigger "key" is the wrong file (or /dev/zero)."""


def load_signing_key(path: Path) -> SigningKey:
    """Read a private key written by :func:`generate`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = read_limited(path, KEY_FILE_LIMIT)
    except OSError as err:
        raise KeyFileError(f"cannot read signing key {path}: {err.strerror}") from None
    try:
        priv = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {err}") from None
    if not isinstance(priv, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(priv, raw)


def load_public_key(path: Path) -> bytes:
    """The raw 32 bytes of a ``.pub`` file."""
    try:
        text = read_limited(path, KEY_FILE_LIMIT).decode("utf-8", errors="replace")
    except OSError as err:
        raise KeyFileError(f"cannot read public key {path}: {err.strerror}") from None
    try:
        return parse_public_key(text)
    except AgentError as err:
        raise KeyFileError(f"{path}: {err}") from None
