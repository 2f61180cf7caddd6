"""Plain-data transport between the grader and the worker: JSON plus raw tensor bytes.

Nothing here can execute code on load: there is no pickle anywhere. A message is a JSON
document in which every tensor is replaced by ``{"__tensor__": i}``; tensor ``i`` lives in a
separate byte blob described by (dtype name, shape, offset, length). Anything that is not
plain data (a student's custom object, say) is sent as a description ``{"__object__": type,
"repr": ...}`` so that the verdict can say what it got instead of crashing.

A frame on a pipe is: 16-byte header (two little-endian uint64: JSON length, blob length),
then the JSON, then the blob.
"""

from __future__ import annotations

import io
import json
import math
import struct

import numpy as np
import torch

_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16,
        torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
        torch.complex64, torch.complex128,
    )
}
_HEADER = struct.Struct("<QQ")
MAX_DEPTH = 32


class WireError(ValueError):
    """The bytes do not form a valid message (truncated, oversized, malformed)."""


def encode(obj) -> tuple[bytes, bytes]:
    """Encode plain data (dict/list/tuple/str/number/None/tensor/ndarray) as (json, blob)."""
    tensors: list[torch.Tensor] = []
    tree = _to_tree(obj, tensors, depth=0)
    blob = bytearray()
    table = []
    for tensor in tensors:
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        table.append({"dtype": str(tensor.dtype).removeprefix("torch."),
                      "shape": list(tensor.shape), "offset": len(blob), "nbytes": len(raw)})
        blob += raw
    doc = json.dumps({"tree": tree, "tensors": table}, allow_nan=True).encode()
    return doc, bytes(blob)


def decode(doc: bytes, blob: bytes):
    """Inverse of :func:`encode`. Raises :class:`WireError` on anything malformed."""
    try:
        message = json.loads(doc)
        table = message["tensors"]
        tensors = [_tensor_from(entry, blob) for entry in table]
        return _from_tree(message["tree"], tensors)
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as error:
        raise WireError(f"malformed message: {error}") from error


def pack_frame(obj) -> bytes:
    doc, blob = encode(obj)
    return _HEADER.pack(len(doc), len(blob)) + doc + blob


def unpack_frame(frame: bytes):
    """Inverse of :func:`pack_frame` for a whole frame held in memory."""
    return read_frame(io.BytesIO(frame), max_bytes=len(frame))


def read_frame(stream, max_bytes: int):
    """Read one frame from a binary stream; None at a clean end of stream."""
    header = _read_exactly(stream, _HEADER.size, allow_eof=True)
    if header is None:
        return None
    doc_len, blob_len = _HEADER.unpack(header)
    if doc_len + blob_len > max_bytes:
        raise WireError(f"message of {doc_len + blob_len} bytes exceeds the cap of {max_bytes}")
    doc = _read_exactly(stream, doc_len)
    blob = _read_exactly(stream, blob_len)
    return decode(doc, blob)


def _read_exactly(stream, n: int, allow_eof: bool = False):
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            if allow_eof and got == 0:
                return None
            raise WireError(f"stream ended after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _to_tree(obj, tensors, depth):
    if depth > MAX_DEPTH:
        return {"__object__": "too deeply nested", "repr": "..."}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if abs(obj) < 2**63 else float(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        tensors.append(obj.detach().to("cpu").contiguous().clone())
        return {"__tensor__": len(tensors) - 1}
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "biufc":
        return _to_tree(torch.from_numpy(np.ascontiguousarray(obj)), tensors, depth)
    if isinstance(obj, np.generic):
        return _to_tree(obj.item(), tensors, depth)
    if isinstance(obj, (list, tuple)):
        return [_to_tree(item, tensors, depth + 1) for item in obj]
    if isinstance(obj, dict) and all(isinstance(key, str) for key in obj):
        return {"__dict__": {key: _to_tree(value, tensors, depth + 1) for key, value in obj.items()}}
    return {"__object__": type(obj).__qualname__, "repr": _safe_repr(obj)}


def _from_tree(node, tensors):
    if isinstance(node, list):
        return [_from_tree(item, tensors) for item in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__float__" in node:
        return float(node["__float__"])
    if "__dict__" in node:
        return {key: _from_tree(value, tensors) for key, value in node["__dict__"].items()}
    if "__object__" in node:
        return Opaque(str(node["__object__"]), str(node.get("repr", "")))
    raise WireError(f"unknown node {sorted(node)}")


def _tensor_from(entry, blob) -> torch.Tensor:
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise WireError(f"unsupported dtype {entry['dtype']!r}")
    shape = [int(size) for size in entry["shape"]]
    if any(size < 0 for size in shape):
        raise WireError("negative dimension")
    offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
    itemsize = torch.empty((), dtype=dtype).element_size()
    if nbytes != math.prod(shape) * itemsize or offset < 0 or offset + nbytes > len(blob):
        raise WireError("tensor bytes do not match its shape")
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(blob[offset:offset + nbytes]), dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


class Opaque:
    """Something the worker could not send as plain data; verdicts report it by type."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self):
        return f"<{self.type_name}: {self.text}>"


def _safe_repr(obj) -> str:
    try:
        return repr(obj)[:200]
    except Exception:  # a student's __repr__ may raise anything
        return "<unprintable>"


def describe(value) -> str:
    """A short human description of a decoded value, for messages."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} ({str(value.dtype).removeprefix('torch.')})"
    if isinstance(value, Opaque):
        return f"an object of type {value.type_name}"
    if isinstance(value, list):
        return f"a sequence of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:120]
