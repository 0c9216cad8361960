# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""A minimal protobuf wire codec for the handful of Talos API messages this collection uses.

Why hand-written instead of the ``protobuf`` runtime: without generated ``*_pb2`` modules the
runtime needs descriptors built by hand, which is more code than encoding the five wire types
directly. A message type is a ``Message`` subclass with ``FIELDS = {number: (name, kind,
repeated)}``; ``kind`` is a scalar name or another Message subclass. Messages are plain dicts:
decoding fills every known field (defaults for absent scalars, [] for repeated, None for
absent sub-messages) and skips unknown fields, as protobuf does.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
VARINT_KINDS = ("bool", "int32", "int64", "uint32", "uint64", "enum")
DEFAULTS = {"string": "", "bytes": b"", "bool": False}


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected message."""


class Message:
    """Base of every message schema; subclasses set FIELDS, and ONEOF for scalar members of a oneof."""

    FIELDS = {}
    # Scalars in a oneof have presence: sent even at their default, decoded as None when absent.
    ONEOF = ()

    @classmethod
    def encode(cls, message):
        return encode(cls, message)

    @classmethod
    def decode(cls, data):
        return decode(cls, data)


def encode_varint(value):
    if value < 0:
        value += 1 << 64  # negative int32/int64 travel as ten-byte two's complement
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def _encode_value(kind, value):
    if kind in VARINT_KINDS:
        return VARINT, encode_varint(int(value))
    if kind == "string":
        raw = value.encode("utf-8")
    elif kind == "bytes":
        raw = bytes(value)
    else:
        raw = encode(kind, value)
    return LENGTH, encode_varint(len(raw)) + raw


def encode(schema, message):
    """Encode a dict as schema; fields left at their default are omitted (proto3)."""
    out = bytearray()
    for number, (name, kind, repeated) in sorted(schema.FIELDS.items()):
        value = message.get(name)
        values = list(value or ()) if repeated else [value]
        for item in values:
            if item is None or (not repeated and isinstance(kind, str) and not item and name not in schema.ONEOF):
                continue
            wire_type, payload = _encode_value(kind, item)
            out += encode_varint(number << 3 | wire_type) + payload
    return bytes(out)


def _decode_value(kind, wire_type, raw):
    if kind in VARINT_KINDS:
        if wire_type != VARINT:
            raise DecodeError("expected a varint")
        if kind == "bool":
            return bool(raw)
        if kind in ("int32", "int64", "enum") and raw >= 1 << 63:
            return raw - (1 << 64)
        return raw
    if wire_type != LENGTH:
        raise DecodeError("expected a length-delimited field")
    if kind == "string":
        return raw.decode("utf-8")
    if kind == "bytes":
        return bytes(raw)
    return decode(kind, raw)


def empty(schema):
    """The decoded form of a message with no fields set."""
    message = {}
    for name, kind, repeated in schema.FIELDS.values():
        if repeated:
            message[name] = []
        elif isinstance(kind, str) and name not in schema.ONEOF:
            message[name] = DEFAULTS.get(kind, 0)
        else:
            message[name] = None
    return message


def decode(schema, data):
    """Decode bytes into a dict with every field of schema."""
    data = memoryview(bytes(data))
    message = empty(schema)
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            raw, pos = read_varint(data, pos)
        elif wire_type == LENGTH:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise DecodeError("truncated field %d" % number)
            raw, pos = bytes(data[pos:pos + length]), pos + length
        elif wire_type == FIXED64:
            raw, pos = struct.unpack("<Q", data[pos:pos + 8])[0], pos + 8
        elif wire_type == FIXED32:
            raw, pos = struct.unpack("<I", data[pos:pos + 4])[0], pos + 4
        else:
            raise DecodeError("unsupported wire type %d" % wire_type)
        if number not in schema.FIELDS:
            continue
        name, kind, repeated = schema.FIELDS[number]
        value = _decode_value(kind, wire_type, raw)
        if repeated:
            message[name].append(value)
        else:
            message[name] = value
    return message
