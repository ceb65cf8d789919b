# SPDX-License-Identifier: GPL-3.0-or-later
"""Canonical ONNX: the same graph always serialises to the same bytes (so a rebuild has the same sha256).

tf2onnx 1.17 + TensorFlow 2.21 are not deterministic: two conversions of the same
TF.js graph give functionally identical ONNX files that differ in node order, in
generated tensor names (``pad_const__79`` vs ``__30``), in doc strings (the temp
path converted from) and in protobuf field presence. This rewrites a model into
one canonical form: nodes in a topological order whose ties are broken by a
structural hash (op, attributes, and the hashes of its inputs, down to the
initializers' bytes: a Merkle hash, independent of names), tensors and nodes
renamed by that order, initializers sorted by content, doc strings and empty
domains cleared. Graph inputs and outputs keep their names.

Runs inside the throwaway build environment (it needs the ``onnx`` package, which
the assistant itself does not): ``python _onnx_canon.py IN.onnx OUT.onnx``.
"""

from __future__ import annotations

import hashlib
import heapq
import sys

import onnx
from onnx import numpy_helper


def _h(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def canonicalize(model):
    """Rewrite ``model`` (an onnx.ModelProto) in place into its canonical form; return it."""
    g = model.graph
    sig: dict[str, str] = {"": "none"}  # tensor name -> structural hash
    for i in g.input:
        sig[i.name] = _h("input", i.name)
    for t in g.initializer:
        sig[t.name] = _h("init", t.data_type, list(t.dims), numpy_helper.to_array(t).tobytes())
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                a.t.name = ""  # generated names inside Constant values
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[int, list] = {id(n): [] for n in g.node}
    indeg: dict[int, int] = {}
    for n in g.node:
        deps = {id(producers[x]) for x in n.input if x in producers}
        indeg[id(n)] = len(deps)
        for d in deps:
            consumers[d].append(n)

    def node_sig(n) -> str:
        attrs = sorted((a.name, a.SerializeToString()) for a in n.attribute)
        return _h(n.op_type, n.domain, attrs, [sig[x] for x in n.input])

    # Kahn's topological sort, ready nodes taken in order of their structural hash.
    heap = [(node_sig(n), i, n) for i, n in enumerate(g.node) if indeg[id(n)] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        s, _, n = heapq.heappop(heap)
        order.append(n)
        for k, o in enumerate(n.output):
            sig[o] = _h(s, k)
        for c in consumers[id(n)]:
            indeg[id(c)] -= 1
            if indeg[id(c)] == 0:
                heapq.heappush(heap, (node_sig(c), len(order) + len(heap), c))
    if len(order) != len(g.node):
        raise ValueError("graph has a cycle")
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    inits = sorted(g.initializer, key=lambda t: sig[t.name])
    rename = {t.name: (t.name if t.name in keep else f"c{k}") for k, t in enumerate(inits)}
    count = 0
    for k, n in enumerate(order):
        n.name = f"n{k}_{n.op_type}"
        for o in n.output:
            if o and o not in rename:
                rename[o] = o if o in keep else f"t{count}"
                count += 1
    for n in order:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    for t in inits:
        t.name = rename[t.name]
    nodes = [onnx.NodeProto() for _ in order]
    for dst, src in zip(nodes, order, strict=True):
        dst.CopyFrom(src)
    tensors = [onnx.TensorProto() for _ in inits]
    for dst, src in zip(tensors, inits, strict=True):
        dst.CopyFrom(src)
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(tensors)
    del g.value_info[:]
    # tf2onnx writes its run's details (the temp path converted from) into doc strings,
    # and field presence differs run to run (domain "" set or unset): clear both alike.
    g.ClearField("doc_string")
    model.ClearField("doc_string")
    for n in g.node:
        n.ClearField("doc_string")
        if not n.domain:
            n.ClearField("domain")
    return model


if __name__ == "__main__":  # pragma: no cover
    m = canonicalize(onnx.load(sys.argv[1]))
    onnx.checker.check_model(m)
    onnx.save(m, sys.argv[2])
