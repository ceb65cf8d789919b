# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file a user (or a bundle) names, without trusting it to be a small regular file.

``read_text()`` on ``/dev/zero`` reads until memory runs out, and on a FIFO it blocks until a
writer comes. :func:`read_limited` refuses anything that is not a regular file before opening
it (so it cannot block), and stops at ``limit`` bytes. Its errors are :class:`OSError` with a
``strerror``, so callers keep their usual ``except OSError as err: ... err.strerror`` lines.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MIB = 1 << 20


def _human(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n} bytes"


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; OSError otherwise."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows links: a link to a regular file is fine
    except ValueError:  # "embedded null byte": no file can have that name
        raise OSError(errno.EINVAL, "the name contains a NUL character", str(p)) from None
    if not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "a device, pipe or socket"
        raise OSError(errno.EINVAL, f"it is {what}, not a regular file", str(p))
    with p.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"it is larger than {_human(limit)}", str(p))
    return data


def decode_text(data: bytes) -> str:
    """UTF-8 text of ``data`` (a UTF-8 BOM is allowed); UnicodeDecodeError names the problem.

    A UTF-16 file (what some Windows editors save) gets a message that says so, since its
    bytes are not a UTF-8 decode error the user can act on.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UnicodeDecodeError("utf-8", data[:2], 0, 2, "the file is UTF-16; save it as UTF-8")
    return data.decode("utf-8-sig")
