"""Read a frozen TensorFlow ``GraphDef`` (``*.pb``) without TensorFlow.

A small decoder of the protobuf wire format that knows just the messages a frozen inference graph
uses: ``GraphDef.node`` -> ``NodeDef{name, op, input, attr}`` and ``AttrValue`` with its
``TensorProto`` / ``TensorShapeProto`` / ``ListValue``. Field numbers are TensorFlow's
(``tensorflow/core/framework/*.proto``); unknown fields are skipped, as protobuf does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DTYPES", "Node", "Tensor", "constants", "parse_graphdef", "read_graphdef"]

# TensorFlow DataType enum -> numpy dtype (the types a frozen graph's constants use).
DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    19: np.dtype(np.float16),
}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _signed(v: int) -> int:
    """A varint read as int64 (negative numbers are ten-byte two's complement)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """A message's ``(field number, wire type, value)`` triples in order.

    Values are ints (varint, fixed32, fixed64, raw bits) or ``bytes`` (length-delimited).
    """
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == _VARINT:
            val, pos = _varint(buf, pos)
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("truncated length-delimited field")
            val, pos = buf[pos : pos + n], pos + n
        elif wire == _I32:
            val, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        elif wire == _I64:
            val, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        else:
            raise ValueError(f"unsupported wire type {wire} (field {num})")
        out.append((num, wire, val))
    if pos != end:
        raise ValueError("message overruns its buffer")
    return out


def _packed_varints(val: bytes | int, wire: int) -> list[int]:
    if wire == _VARINT:
        return [_signed(int(val))]  # type: ignore[arg-type]
    buf = bytes(val)  # type: ignore[arg-type]
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(_signed(v))
    return out


def _packed_floats(val: bytes | int, wire: int, fmt: str) -> list[float]:
    size = struct.calcsize(fmt)
    if wire in (_I32, _I64):
        return [struct.unpack(fmt, int(val).to_bytes(size, "little"))[0]]  # type: ignore[arg-type]
    buf = bytes(val)  # type: ignore[arg-type]
    return list(struct.unpack(f"<{len(buf) // size}{fmt[-1]}", buf))


def _shape(buf: bytes) -> tuple[int, ...] | None:
    """TensorShapeProto -> dims (``-1`` for unknown), or ``None`` for unknown rank."""
    dims: list[int] = []
    for num, _, val in _fields(buf):
        if num == 2:  # dim
            size = 0
            for n2, _, v2 in _fields(val):
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
        elif num == 3 and val:  # unknown_rank
            return None
    return tuple(dims)


@dataclass(frozen=True)
class Tensor:
    """A decoded ``TensorProto``: its value as a numpy array of the declared shape."""

    dtype: int
    shape: tuple[int, ...]
    value: NDArray[Any]


def _tensor(buf: bytes) -> Tensor:
    dtype, shape, content = 0, (), b""
    vals: list[Any] = []
    for num, wire, val in _fields(buf):
        if num == 1:
            dtype = val
        elif num == 2:
            shape = _shape(val) or ()
        elif num == 4:
            content = bytes(val)
        elif num == 5:  # float_val
            vals += _packed_floats(val, wire, "<f")
        elif num == 6:  # double_val
            vals += _packed_floats(val, wire, "<d")
        elif num in (7, 10, 11):  # int_val (also int8/16/uint8/bool), int64_val, bool_val
            vals += _packed_varints(val, wire)
        elif num == 13:  # half_val: float16 bit patterns as int32
            vals += [np.uint16(v).view(np.float16) for v in _packed_varints(val, wire)]
        elif num == 8:  # string_val
            vals.append(bytes(val))
    if dtype not in DTYPES:
        if dtype == 7:  # DT_STRING
            return Tensor(dtype, shape, np.array(vals, dtype=object).reshape(shape) if vals else np.array([]))
        raise ValueError(f"unsupported tensor dtype {dtype}")
    np_dtype = DTYPES[dtype]
    count = int(np.prod(shape)) if shape else 1
    if content:
        arr = np.frombuffer(content, dtype=np_dtype.newbyteorder("<")).astype(np_dtype)
    elif vals:
        arr = np.asarray(vals).astype(np_dtype)
        if arr.size < count:  # TensorFlow repeats the last value to fill the shape
            arr = np.concatenate([arr, np.full(count - arr.size, arr[-1], np_dtype)])
    else:
        arr = np.zeros(count, np_dtype)
    if arr.size != count:
        raise ValueError(f"tensor has {arr.size} values for shape {shape}")
    return Tensor(dtype, shape, arr.reshape(shape))


def _list(buf: bytes) -> list[Any]:
    out: list[Any] = []
    for num, wire, val in _fields(buf):
        if num == 2:
            out.append(bytes(val))
        elif num in (3, 5, 6):  # i, b, type (packed or not)
            out += _packed_varints(val, wire)
        elif num == 4:
            out += _packed_floats(val, wire, "<f")
        elif num == 7:
            out.append(_shape(val))
        elif num == 8:
            out.append(_tensor(val))
    return out


def _attr_value(buf: bytes) -> Any:
    """AttrValue -> python: bytes, int, float, bool, dtype int, shape tuple, Tensor or list."""
    for num, wire, val in _fields(buf):
        if num == 1:
            return _list(val)
        if num == 2:
            return bytes(val)
        if num == 3:
            return _signed(val)
        if num == 4:
            return _packed_floats(val, wire, "<f")[0]
        if num == 5:
            return bool(val)
        if num == 6:
            return int(val)
        if num == 7:
            return _shape(val)
        if num == 8:
            return _tensor(val)
        if num == 9:
            return bytes(val).decode()
    return None


@dataclass(frozen=True)
class Node:
    """A ``NodeDef``: ``inputs`` keep TensorFlow's spelling (``name:1``, ``^control``)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _node(buf: bytes) -> Node:
    name = op = ""
    inputs: list[str] = []
    attr: dict[str, Any] = {}
    for num, _, val in _fields(buf):
        if num == 1:
            name = bytes(val).decode()
        elif num == 2:
            op = bytes(val).decode()
        elif num == 3:
            inputs.append(bytes(val).decode())
        elif num == 5:  # map<string, AttrValue> entry
            key, value = "", None
            for n2, _, v2 in _fields(val):
                if n2 == 1:
                    key = bytes(v2).decode()
                elif n2 == 2:
                    value = _attr_value(v2)
            attr[key] = value
    return Node(name, op, tuple(inputs), attr)


def parse_graphdef(data: bytes) -> list[Node]:
    """The nodes of a serialized ``GraphDef``, in file order."""
    return [_node(val) for num, wire, val in _fields(data) if num == 1 and wire == _LEN]


def read_graphdef(path: str | Path) -> list[Node]:
    """The nodes of the frozen graph file at ``path``."""
    return parse_graphdef(Path(path).read_bytes())


def constants(nodes: list[Node]) -> dict[str, NDArray[Any]]:
    """``Const`` node name -> its value (read-only arrays in TensorFlow's layout, e.g. HWIO)."""
    out: dict[str, NDArray[Any]] = {}
    for n in nodes:
        if n.op == "Const":
            value = n.attr.get("value")
            if not isinstance(value, Tensor):
                raise ValueError(f"Const node {n.name!r} has no tensor value")
            out[n.name] = value.value
    return out
