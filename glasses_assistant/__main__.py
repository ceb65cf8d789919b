# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m glasses_assistant` is the `glasses-assistant` command."""

import sys

from .cli import main

sys.exit(main())
