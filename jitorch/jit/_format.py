"""``jit.save`` / ``jit.load``: a traced graph and its weights in one file, without pickle.

The file is a jitorch checkpoint (``jitorch.save``'s zip of ``manifest.json`` and
``.npy`` tensors; see ``docs/serialization.md``) holding the weights, constants
and attribute arrays, plus one more member, ``graph.json``, describing the
graph (format in ``docs/deployment.md``). Loading parses JSON and ``.npy``
headers only, checks every reference, and builds the graph from the op
registry, so the model's Python class is not needed and nothing in the file
is executed.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import zipfile
from collections import OrderedDict

from .. import _dtype as D
from ..compiler.ir import Graph, Value
from ..ops.registry import OPS
from ._codec import DTYPE_NAMES, Decoder, EncodeError, Encoder, FormatError
from ._modules import TracedFunction, TracedModule, Weight
from ._program import Program, Signature
from ._shapes import Fill, Sym

FORMAT_NAME = "jitorch.jit"
FORMAT_VERSION = 1
GRAPH_MEMBER = "graph.json"
_MAX_GRAPH_BYTES = 256 * 1024 * 1024


# -- save -------------------------------------------------------------------------------------------------------
def save(m, f, _extra_files=None) -> None:
    """Write a traced module or function (graph + weights) to a path or binary file object."""
    from .. import serialization
    if not isinstance(m, (TracedModule, TracedFunction)):
        raise TypeError(f"jitorch.jit.save expects a traced module or function (from jitorch.jit.trace), got "
                        f"{type(m).__name__}")
    if _extra_files:
        raise NotImplementedError("jitorch.jit.save does not support _extra_files")
    graph_doc, tensors = _describe(m)
    payload = json.dumps(graph_doc, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    buf = io.BytesIO()
    serialization.save(tensors, buf)  # all checks happen before anything is written to f
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo(GRAPH_MEMBER, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        zf.writestr(info, payload)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(buf.getvalue())
    elif hasattr(f, "write"):
        f.write(buf.getvalue())
    else:
        raise TypeError(f"jitorch.jit.save: f must be a path or a writable binary file object, got {type(f).__name__}")


def _shape(shape) -> list:
    return [{"$batch": [d.coef, d.offset]} if isinstance(d, Sym) else d for d in shape]


def _spec(spec):
    if spec[0] == "T":
        return "T"
    if spec[0] == "dict":
        return {"dict": [[k, _spec(s)] for k, s in spec[1]]}
    return {spec[0]: [_spec(s) for s in spec[1]]}


def _describe(m):
    """(graph.json document, object for jitorch.save) of a traced module or function."""
    from .. import from_numpy
    from ..nn.parameter import Parameter
    program = m._program
    g = program.template
    enc = Encoder()
    weights = OrderedDict()
    roles = []
    if isinstance(m, TracedModule):
        for (d, key, name), t in zip(m._weight_slots, m._current_weights()):
            weights[name] = t
        roles = [{"name": n, "parameter": isinstance(t, Parameter)} for n, t in weights.items()]
    constants = [c.const.detach() for c in g.constants if not isinstance(c.const, Fill)]
    const_docs, index = [], 0
    for c in g.constants:
        if isinstance(c.const, Fill):
            const_docs.append({"id": c.id, "fill": enc.encode(c.const.value, "a constant's fill value"),
                               "dtype": c.dtype.name, "shape": _shape(c.shape)})
        else:
            const_docs.append({"id": c.id, "index": index})
            index += 1
    nodes = []
    for k, node in enumerate(g.nodes):
        name = node.name
        where = f"node {k} ({name}, {node.meta.get('where', '?')})"
        if OPS.get(name) is not node.op:
            raise RuntimeError(f"jitorch.jit.save: {where} is not an op of the registry")
        try:
            ins = [{"$v": i.id} if isinstance(i, Value) else enc.encode(i, f"{where} operand {j}")
                   for j, i in enumerate(node.inputs)]
            attrs = {key: enc.encode(v, f"{where} attribute {key!r}") for key, v in node.attrs.items()}
        except EncodeError as e:
            raise RuntimeError(f"jitorch.jit.save: cannot encode {e}") from None
        compute = node.meta.get("compute")
        nodes.append({"op": name, "inputs": ins, "attrs": attrs,
                      "outputs": [{"id": o.id, "shape": _shape(o.shape), "dtype": o.dtype.name} for o in node.outputs],
                      "compute": compute.name if compute is not None else None,
                      "view": bool(node.meta.get("view")), "random": bool(node.meta.get("random")),
                      "effect": bool(node.meta.get("effect")), "where": str(node.meta.get("where", ""))})
    sig = program.signature
    extra = {}
    if isinstance(m, TracedModule):
        extra = {"modules": dict(m._original_names),
                 "training": {n: sub.training for n, sub in m.named_modules()},
                 "aliases": _aliases(m),
                 "non_persistent": _non_persistent(m)}
    doc = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "kind": "module" if isinstance(m, TracedModule) else "function",
        "name": m.original_name if isinstance(m, TracedModule) else m.name,
        "signature": {"name": sig.name, "params": sig.params, "n_positional": sig.n_positional,
                      "specs": {p: _spec(s) for p, s in sig.specs.items()}},
        "out_spec": _spec(program.out_spec),
        "batch": {"traced": program.traced_batch, "inputs": program.batch_inputs,
                  "static_reason": program.static_reason},
        "inputs": [{"id": v.id, "name": v.name, "shape": _shape(v.shape), "dtype": v.dtype.name}
                   for v in g.inputs],
        "n_user_inputs": program.n_user,
        "weights": roles,
        "constants": const_docs,
        "nodes": nodes,
        "outputs": [v.id for v in g.outputs],
        "mutations": [[a.id, b.id] for a, b in g.mutations],
        **extra,
    }
    arrays = [from_numpy(a) for a in enc.tensors]
    return doc, {"weights": weights, "constants": constants, "arrays": arrays}


def _aliases(m) -> dict:
    """Extra names of tied weights: alias -> canonical name."""
    canonical = {id(t): name for (d, key, name), t in zip(m._weight_slots, m._current_weights())}
    out = {}
    for name, t in list(m.named_parameters(remove_duplicate=False)) + list(m.named_buffers(remove_duplicate=False)):
        c = canonical.get(id(t))
        if c is not None and c != name:
            out[name] = c
    return out


def _non_persistent(m) -> list:
    out = []
    for mname, sub in m.named_modules():
        for b in sub._non_persistent_buffers_set:
            out.append(f"{mname}.{b}" if mname else b)
    return out


# -- load -------------------------------------------------------------------------------------------------------
def load(f, map_location=None, _extra_files=None, _restore_shapes=False):
    """Rebuild a traced module or function saved by :func:`save`; no Python class of the model is needed."""
    from .. import serialization
    if _extra_files:
        raise NotImplementedError("jitorch.jit.load does not support _extra_files")
    name = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the stream"
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            data = fh.read()
    elif hasattr(f, "read"):
        data = f.read()
    else:
        raise TypeError(f"jitorch.jit.load: f must be a path or a readable binary file object, got {type(f).__name__}")
    doc = _read_graph_doc(data, name)
    stream = io.BytesIO(data)
    stream.name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else "the stream"  # for its error messages
    tensors = serialization.load(stream, map_location=map_location)
    try:
        return _build(doc, tensors)
    except FormatError as e:
        raise RuntimeError(f"{name} is not a valid jitorch traced module: {e}") from None


def _read_graph_doc(data: bytes, name: str) -> dict:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if GRAPH_MEMBER not in zf.namelist():
                hint = "; it is a jitorch.save checkpoint: load it with jitorch.load" if "manifest.json" in \
                    zf.namelist() else ""
                raise FormatError(f"the archive has no {GRAPH_MEMBER}{hint}")
            info = zf.getinfo(GRAPH_MEMBER)
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > _MAX_GRAPH_BYTES:
                raise FormatError(f"{GRAPH_MEMBER} is compressed or implausibly large")
            doc = json.loads(zf.read(info).decode("utf-8"), parse_constant=_reject_constant)
    except FormatError as e:
        raise RuntimeError(f"{name} is not a valid jitorch traced module: {e}") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as e:
        raise RuntimeError(f"{name} is not a valid jitorch traced module: {type(e).__name__}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise RuntimeError(f"{name} is not a valid jitorch traced module: {GRAPH_MEMBER} declares format "
                           f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected {FORMAT_NAME!r}")
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise RuntimeError(f"{name} is not a valid jitorch traced module: bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise RuntimeError(f"{name} was saved with jit format version {version}, newer than this jitorch "
                           f"understands ({FORMAT_VERSION}); upgrade jitorch")
    return doc


def _reject_constant(text):
    raise FormatError(f"{GRAPH_MEMBER} contains the non-JSON constant {text}")


def _req(cond, msg) -> None:
    if not cond:
        raise FormatError(msg)


def _get(doc, key, kind):
    v = doc.get(key) if isinstance(doc, dict) else None
    _req(isinstance(v, kind), f"field {key!r} is missing or has the wrong type")
    return v


def _dim(d):
    if type(d) is int and d >= 0:
        return d
    if isinstance(d, dict) and list(d) == ["$batch"] and isinstance(d["$batch"], list) and len(d["$batch"]) == 2 \
            and all(type(x) is int for x in d["$batch"]):
        return Sym(*d["$batch"])
    raise FormatError(f"invalid dimension {d!r}")


def _shape_of(v) -> tuple:
    shape = v
    _req(isinstance(shape, list) and len(shape) <= 64, f"invalid shape {str(shape)[:80]}")
    return tuple(_dim(d) for d in shape)


def _dtype_of(name):
    _req(name in DTYPE_NAMES, f"unknown dtype {name!r}")
    return D._by_name(name)


def _spec_of(s, depth=0):
    _req(depth < 50, "argument structure nested too deeply")
    if s == "T":
        return ("T",)
    _req(isinstance(s, dict) and len(s) == 1, f"invalid argument structure {str(s)[:80]}")
    (tag, items), = s.items()
    _req(tag in ("tuple", "list", "dict") and isinstance(items, list), f"invalid argument structure tag {tag!r}")
    if tag == "dict":
        _req(all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int)) for p in items),
             "invalid dict structure")
        return ("dict", [(k, _spec_of(v, depth + 1)) for k, v in items])
    return (tag, [_spec_of(v, depth + 1) for v in items])


def _build(doc, tensors):
    from .._tensor import Tensor
    from ..nn.parameter import Parameter
    from ..runtime.device import CPU
    _req(isinstance(tensors, dict) and all(k in tensors for k in ("weights", "constants", "arrays")),
         "the checkpoint part does not hold weights, constants and arrays")
    weights_t, consts_t, arrays_t = tensors["weights"], tensors["constants"], tensors["arrays"]
    _req(isinstance(weights_t, dict) and isinstance(consts_t, list) and isinstance(arrays_t, list)
         and all(isinstance(t, Tensor) for t in list(weights_t.values()) + consts_t + arrays_t),
         "the checkpoint tensors are malformed")
    kind = _get(doc, "kind", str)
    _req(kind in ("module", "function"), f"unknown kind {kind!r}")
    dec = Decoder(arrays_t)
    g = Graph()
    values = {}

    def define(v):
        _req(type(v.id) is int and v.id not in values, f"value id {v.id!r} is defined twice or invalid")
        values[v.id] = v

    def ref(i):
        _req(type(i) is int and i in values, f"reference to undefined value {i!r}")
        return values[i]

    n_user = _get(doc, "n_user_inputs", int)
    inputs = _get(doc, "inputs", list)
    weights_doc = _get(doc, "weights", list)
    _req(0 <= n_user <= len(inputs) and len(inputs) - n_user == len(weights_doc),
         "the inputs do not match the weights table")
    for k, d in enumerate(inputs):
        _req(isinstance(d, dict) and (d.get("name") is None or isinstance(d.get("name"), str)), "invalid input")
        v = g.add_input(_shape_of(d.get("shape")), _dtype_of(d.get("dtype")), CPU, name=d.get("name"))
        v.id = d.get("id")
        define(v)
    weights = []
    for d, v in zip(weights_doc, g.inputs[n_user:]):
        _req(isinstance(d, dict) and isinstance(d.get("name"), str) and d["name"] in weights_t,
             f"weight {d.get('name') if isinstance(d, dict) else d!r} is missing from the tensor table")
        t = weights_t[d["name"]]
        _req(tuple(t.shape) == v.shape and t.dtype is v.dtype,
             f"weight {d['name']!r} has shape {list(t.shape)} {t.dtype}, the graph expects {list(v.shape)} {v.dtype}")
        weights.append(Weight([d["name"]], t, isinstance(t, Parameter)))
    for d in _get(doc, "constants", list):
        _req(isinstance(d, dict), "invalid constant")
        if "fill" in d:
            value = dec.decode(d["fill"])
            _req(type(value) in (bool, int, float), "invalid constant fill value")
            c = g.add_constant(Fill(value, _dtype_of(d.get("dtype"))).make((0,)))
            c.shape, c.const = _shape_of(d.get("shape")), Fill(value, c.dtype)
        else:
            _req(type(d.get("index")) is int and 0 <= d["index"] < len(consts_t), "invalid constant")
            c = g.add_constant(consts_t[d["index"]])
        c.id = d.get("id")
        define(c)
    for k, d in enumerate(_get(doc, "nodes", list)):
        _req(isinstance(d, dict), f"node {k} is not an object")
        op = OPS.get(d.get("op"))
        _req(op is not None, f"node {k} uses the op {d.get('op')!r}, which this jitorch does not have")
        ins = []
        for i in _get(d, "inputs", list):
            if isinstance(i, dict) and list(i) == ["$v"]:
                ins.append(ref(i["$v"]))
            else:
                ins.append(dec.decode(i))
        attrs_doc = _get(d, "attrs", dict)
        attrs = {str(key): dec.decode(val) for key, val in attrs_doc.items()}
        outs = _get(d, "outputs", list)
        _req(len(outs) >= 1 and all(isinstance(o, dict) for o in outs), f"node {k} has no outputs")
        meta = {"where": str(d.get("where", "")), "view": bool(d.get("view"))}
        if d.get("compute") is not None:
            meta["compute"] = _dtype_of(d.get("compute"))
        for flag in ("random", "effect"):
            if d.get(flag):
                meta[flag] = True
        node = g.add_node(op, ins, attrs, [(_shape_of(o.get("shape")), _dtype_of(o.get("dtype")), CPU) for o in outs],
                          meta=meta)
        for o, spec in zip(node.outputs, outs):
            o.id = spec.get("id")
            define(o)
    g.outputs = [ref(i) for i in _get(doc, "outputs", list)]
    muts = _get(doc, "mutations", list)
    _req(all(isinstance(p, list) and len(p) == 2 for p in muts), "invalid mutations")
    g.mutations = [(ref(a), ref(b)) for a, b in muts]
    _req(all(a.kind == "input" for a, _ in g.mutations), "a mutation writes to something that is not an input")
    g._ids = itertools.count(max(values, default=-1) + 1)
    g.rebuild_users()

    sig_doc = _get(doc, "signature", dict)
    params = _get(sig_doc, "params", list)
    specs_doc = _get(sig_doc, "specs", dict)
    _req(all(isinstance(p, str) and p in specs_doc for p in params), "invalid signature")
    signature = Signature(_get(sig_doc, "name", str), params, {p: _spec_of(specs_doc[p]) for p in params},
                          _get(sig_doc, "n_positional", int))
    _req(len(signature.leaf_names()) == n_user, "the signature does not match the inputs")
    batch = _get(doc, "batch", dict)
    traced = batch.get("traced")
    _req(traced is None or (type(traced) is int and traced > 0), "invalid traced batch size")
    b_inputs = batch.get("inputs")
    _req(isinstance(b_inputs, list) and all(type(i) is int and 0 <= i < n_user for i in b_inputs),
         "invalid batch inputs")
    _req(traced is None or b_inputs, "a batch size without batch inputs")
    reason = batch.get("static_reason")
    _req(reason is None or isinstance(reason, str), "invalid static_reason")
    program = Program(g, signature, _spec_of(doc.get("out_spec")), n_user, b_inputs, traced, reason)
    if kind == "function":
        return TracedFunction(program, str(doc.get("name", "fn")))
    return _module(doc, program, weights, weights_t)


def _module(doc, program, weights, weights_t):
    modules = doc.get("modules", {})
    _req(isinstance(modules, dict) and all(isinstance(v, str) for v in modules.values()), "invalid module names")
    aliases = doc.get("aliases", {})
    _req(isinstance(aliases, dict), "invalid aliases")
    by_name = {w.names[0]: w for w in weights}
    for alias, canonical in aliases.items():
        _req(canonical in by_name, f"alias {alias!r} names the unknown weight {canonical!r}")
        by_name[canonical].names.append(alias)
    non_persistent = set(doc.get("non_persistent", []))
    for w in weights:
        w.persistent = w.names[0] not in non_persistent
        _req(all(n and all(part for part in n.split(".")) for n in w.names), f"invalid weight name {w.names!r}")
    training = doc.get("training", {})
    _req(isinstance(training, dict) and all(type(v) is bool for v in training.values()), "invalid training flags")
    try:
        return TracedModule(program, weights, modules, {k: v for k, v in training.items()})
    except (KeyError, TypeError, AttributeError) as e:
        raise FormatError(f"the module tree cannot be rebuilt: {e}") from None
