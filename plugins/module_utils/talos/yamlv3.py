# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""A YAML emitter that writes what Go's gopkg.in/yaml.v3 writes with a 4-space indent.

Talos encodes machine configs with yaml.v3 (indent 4, no line folding); matching its output byte
for byte keeps our rendered configs identical to `talosctl gen config` and keeps diffs quiet.
The data is plain Python: dict (emitted in insertion order; use sort_keys() where Go would sort
a map), list, str, int, float, bool and None.

Indentation follows yaml.v3's emitter: a block collection nested under a mapping key is indented
to the next multiple of 4; the content of a sequence item starts 2 columns after its "- ".
"""

from __future__ import annotations

import datetime
import decimal
import functools
import math
import re

INDENT = 4

_OLD_BOOLS = frozenset("y Y yes Yes YES on On ON n N no No NO off Off OFF".split())
_NOT_STRINGS = frozenset(
    "true True TRUE false False FALSE ~ null Null NULL .nan .NaN .NAN .inf .Inf .INF "
    "+.inf +.Inf +.INF -.inf -.Inf -.INF <<".split()
) | {""}
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_DOT_FLOAT = re.compile(r"\.[0-9](_?[0-9])*([eE][-+]?[0-9]+)?\Z")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[-+]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?\Z"
)
_BREAKS = "\n\r\x85\u2028\u2029"


def _is_timestamp(value):
    match = _TIMESTAMP.match(value)
    if not match:
        return False
    year, month, day = (int(part) for part in match.group(1, 2, 3))
    clock = [int(part) for part in match.groups()[3:] if part is not None]
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)


def _is_number(value):
    """True when yaml.v3's resolver reads the plain scalar as an int or a float."""
    first = value[0]
    if first == ".":
        return bool(_DOT_FLOAT.match(value))
    if first not in "+-0123456789":
        return False
    plain = value.replace("_", "")
    if _GO_INT.match(plain):
        number = int(plain, 8) if re.match(r"[-+]?0[0-7]+\Z", plain) else int(plain, 0)
        if -(1 << 63) <= number < (1 << 64) and not (number >= (1 << 63) and plain[0] in "+-"):
            return True
    return bool(_YAML_FLOAT.match(plain))


def _resolves_to_string(value):
    """True when the plain scalar would read back as this string (yaml.v3 Marshal's canUsePlain)."""
    if value in _NOT_STRINGS or value in _OLD_BOOLS:
        return False
    if _is_number(value) or _BASE60_FLOAT.match(value):
        return False
    if value[0] in "0123456789" and _is_timestamp(value):
        return False
    return True


def _printable(char):
    code = ord(char)
    return (
        char == "\n"
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def _analyze(value):
    """yaml.v3's scalar analysis: (plain allowed in block context, single quotes allowed, block allowed)."""
    block_indicators = value.startswith("---") or value.startswith("...")
    line_breaks = special = tabs = False
    space_break = break_space = False
    previous_space = previous_break = False
    preceded_by_whitespace = True
    last = len(value) - 1
    for index, char in enumerate(value):
        followed_by_whitespace = index == last or value[index + 1] in " \t"
        if index == 0:
            if char in "#,[]{}&*!|>'\"%@`":
                block_indicators = True
            elif char in "?:-" and followed_by_whitespace:
                block_indicators = True
        elif (char == ":" and followed_by_whitespace) or (char == "#" and preceded_by_whitespace):
            block_indicators = True
        if char == "\t":
            tabs = True
        elif not _printable(char):
            special = True
        if char == " ":
            if previous_break:
                break_space = True
            previous_space, previous_break = True, False
        elif char in _BREAKS:
            line_breaks = True
            if previous_space:
                space_break = True
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_whitespace = char in " \t" or char in _BREAKS
    edge_whitespace = value[0] == " " or value[0] in _BREAKS or value[-1] == " " or value[-1] in _BREAKS
    plain = not (edge_whitespace or break_space or space_break or tabs or special or line_breaks or block_indicators)
    single = not (break_space or space_break or tabs or special)
    block = not (value[-1] == " " or space_break or special)
    return plain, single, block


_ESCAPES = {
    "\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
    "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\xa0": "\\_",
    "\u2028": "\\L", "\u2029": "\\P",
}


def _double_quoted(value):
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif not _printable(char) or char == "\ufeff":
            code = ord(char)
            if code <= 0xFF:
                out.append("\\x%02X" % code)
            elif code <= 0xFFFF:
                out.append("\\u%04X" % code)
            else:
                out.append("\\U%08X" % code)
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@functools.lru_cache(maxsize=4096)
def _string(value, simple_key=False):
    """The one-line form of a string, or None when it is written as a literal block."""
    if value == "":
        return '""'
    if not _resolves_to_string(value):
        return _double_quoted(value)
    plain, single, block = _analyze(value)
    if "\n" in value:
        # yaml.v3 writes a multi-line key as a complex "? |-" key; a quoted key reads back the same.
        return None if block and not simple_key else _double_quoted(value)
    if plain:
        return value
    if single:
        return "'" + value.replace("'", "''") + "'"
    return _double_quoted(value)


def _literal(value, indent, parent_indent):
    """A literal block scalar (`|`, `|-`, `|+`) whose lines sit at indent.

    A value starting with a space or a line break needs an explicit indentation indicator,
    relative to the parent node. yaml.v3 always writes 4 there, which is wrong (unreadable YAML)
    when the parent is not at a multiple of 4; we write the true offset, identical otherwise.
    """
    header = "|"
    if value[0] == " " or value[0] in _BREAKS:
        header += str(indent - max(parent_indent, 0))
    if value[-1] not in _BREAKS:
        header += "-"
    elif len(value) == 1 or value[-2] in _BREAKS:
        header += "+"
    out = [header, "\n"]
    pad = " " * indent
    at_line_start = True
    for char in value:
        if char in _BREAKS:
            out.append(char)
            at_line_start = True
        else:
            if at_line_start:
                out.append(pad)
                at_line_start = False
            out.append(char)
    if not at_line_start:
        out.append("\n")
    return "".join(out)


def _go_float(value):
    """strconv.FormatFloat(value, 'g', -1, 64) plus yaml.v3's spellings of infinity and NaN."""
    if math.isnan(value):
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    negative, digit_tuple, exponent = decimal.Decimal(repr(value)).as_tuple()
    digits = "".join(str(d) for d in digit_tuple).lstrip("0")
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    point = len(digits) + exponent  # digits before the decimal point
    sign = "-" if negative else ""
    if point - 1 < -4 or point - 1 >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return "%s%s%se%s%02d" % (sign, digits[0], tail, "-" if point - 1 < 0 else "+", abs(point - 1))
    if point <= 0:
        return sign + "0." + "0" * -point + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def _scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    raise TypeError("cannot encode %s as YAML: %r" % (type(value).__name__, value))


def _key(key):
    if isinstance(key, str):
        return _string(key, True)
    return _scalar(key)


def _next_indent(indent):
    """Where yaml.v3 puts a block collection or block scalar nested under a mapping key."""
    return INDENT * ((indent + INDENT) // INDENT)


def _value(value, indent, out):
    """Write a value that follows `key:` (nested under a mapping at column indent)."""
    if isinstance(value, dict):
        if value:
            out.append("\n")
            _mapping(value, _next_indent(indent), out)
        else:
            out.append(" {}\n")
    elif isinstance(value, (list, tuple)):
        if value:
            out.append("\n")
            _sequence(value, _next_indent(indent), out)
        else:
            out.append(" []\n")
    elif isinstance(value, str):
        text = _string(value)
        if text is None:
            out.append(" " + _literal(value, _next_indent(indent), indent))
        else:
            out.append(" " + text + "\n")
    else:
        out.append(" " + _scalar(value) + "\n")


def _mapping(mapping, indent, out, first_inline=False):
    pad = " " * indent
    for key, value in mapping.items():
        if first_inline:
            first_inline = False
        else:
            out.append(pad)
        out.append(_key(key) + ":")
        _value(value, indent, out)


def _sequence(sequence, indent, out, first_inline=False):
    pad = " " * indent
    for item in sequence:
        if first_inline:
            first_inline = False
            out.append("- ")
        else:
            out.append(pad + "- ")
        if isinstance(item, dict) and item:
            _mapping(item, indent + 2, out, first_inline=True)
        elif isinstance(item, (list, tuple)) and item:
            _sequence(item, indent + 2, out, first_inline=True)
        elif isinstance(item, dict):
            out.append("{}\n")
        elif isinstance(item, (list, tuple)):
            out.append("[]\n")
        elif isinstance(item, str):
            text = _string(item)
            out.append(_literal(item, indent + 2, indent) if text is None else text + "\n")
        else:
            out.append(_scalar(item) + "\n")


def dump(data):
    """One YAML document as yaml.v3 Marshal (indent 4) writes it, ending in a newline."""
    out = []
    if isinstance(data, dict):
        if data:
            _mapping(data, 0, out)
        else:
            out.append("{}\n")
    elif isinstance(data, (list, tuple)):
        if data:
            _sequence(data, 0, out)
        else:
            out.append("[]\n")
    elif isinstance(data, str):
        text = _string(data)
        out.append(_literal(data, INDENT, 0) if text is None else text + "\n")
    else:
        out.append(_scalar(data) + "\n")
    return "".join(out)


def dump_all(documents):
    """Several documents separated by `---` lines, as Talos writes a multi-document config."""
    return "---\n".join(dump(document) for document in documents)


def _go_key_less(left, right):
    """yaml.v3's ordering of string map keys: runs of digits compare as numbers, letters first."""
    digits = False
    for index in range(min(len(left), len(right))):
        a, b = left[index], right[index]
        if a == b:
            digits = a.isdigit()
            continue
        a_letter, b_letter = a.isalpha(), b.isalpha()
        if a_letter and b_letter:
            return a < b
        if a_letter or b_letter:
            return a_letter if digits else b_letter
        a_number = b_number = 0
        if a == "0" or b == "0":
            back = index - 1
            while back >= 0 and left[back].isdigit():
                if left[back] != "0":
                    a_number = b_number = 1
                    break
                back -= 1
        a_end = index
        while a_end < len(left) and left[a_end].isdigit():
            a_number = a_number * 10 + int(left[a_end])
            a_end += 1
        b_end = index
        while b_end < len(right) and right[b_end].isdigit():
            b_number = b_number * 10 + int(right[b_end])
            b_end += 1
        if a_number != b_number:
            return a_number < b_number
        if a_end != b_end:
            return a_end < b_end
        return a < b
    return len(left) < len(right)


def sort_keys(mapping):
    """A copy of a str-keyed dict in the order yaml.v3 Marshal writes a Go map."""
    keys = list(mapping)
    keys.sort(key=functools.cmp_to_key(lambda a, b: -1 if _go_key_less(a, b) else (1 if _go_key_less(b, a) else 0)))
    return {key: mapping[key] for key in keys}
