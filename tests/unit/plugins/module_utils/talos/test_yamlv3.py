"""yamlv3.dump: byte-equal to Talos's own yaml.v3 output, and every string reads back unchanged."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.netboot.talos.plugins.module_utils.talos import yamlv3


def golden_files(shared_dir):
    return sorted((shared_dir / "talos-golden").glob("v1.*/*.yaml"))


def test_golden_configs_round_trip_byte_for_byte(shared_dir):
    files = golden_files(shared_dir)
    assert len(files) == 24
    for path in files:
        text = path.read_text()
        assert yamlv3.dump_all(list(yaml.safe_load_all(text))) == text, path


TRICKY_STRINGS = [
    "", " ", "true", "True", "FALSE", "yes", "no", "on", "off", "y", "N", "null", "~", "NULL",
    "0", "1", "-1", "+1", "007", "0x1F", "0o17", "0b101", "1_000", "1.5", ".5", "1e3", "-.inf", ".nan",
    "1:30", "2024-01-31", "2024-01-31T10:00:00Z", "12345678901234567890123", "v1.2.3", "10.244.0.0/16",
    "a: b", "a:b", "a #b", "a#b", "#x", "- x", "-x", "-", "?", "? x", ":", ": x", "*x", "&x", "!x", "|x",
    ">x", "'x", '"x', "%x", "@x", "`x", "[x", "]x", "{x", "}x", ",x", "x,y", "---", "...", "--- x",
    "x ", " x", "tab\there", "line1\nline2", "line1\nline2\n", "line1\n\n", "\nlead", " lead\nx",
    "trail \nx", "x\n \ny", "it's", "quote\"d", "back\\slash", "caf\u00e9", "emoji \U0001F600",
    "bell\a", "nel\x85", "bom\ufeff", "<<", "https://example.com/cni.yaml", "node.kubernetes.io/x",
    "key=value:NoSchedule", ">= 100GB", "-----BEGIN X-----\nABC\n-----END X-----\n",
]


@pytest.mark.parametrize("value", TRICKY_STRINGS)
def test_strings_read_back_unchanged_as_value_key_and_item(value):
    for data in ({"k": value}, {value: 1}, [value], {"k": [value]}, {"k": [{"n": value, "m": value}]}):
        assert yaml.safe_load(yamlv3.dump(data)) == data


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", '""'),
        ("true", '"true"'),
        ("yes", '"yes"'),
        ("123", '"123"'),
        ("1.5", '"1.5"'),
        ("2024-01-31", '"2024-01-31"'),
        ("a: b", "'a: b'"),
        ("*x", "'*x'"),
        ("x ", "'x '"),
        ("tab\there", '"tab\\there"'),
        ("plain/text-1", "plain/text-1"),
        ("a#b", "a#b"),
    ],
)
def test_scalar_styles_follow_yaml_v3(value, expected):
    assert yamlv3.dump({"k": value}) == "k: %s\n" % expected


def test_literal_blocks_and_chomping():
    assert yamlv3.dump({"k": "a\nb"}) == "k: |-\n    a\n    b\n"
    assert yamlv3.dump({"k": "a\nb\n"}) == "k: |\n    a\n    b\n"
    assert yamlv3.dump({"k": "a\n\n"}) == "k: |+\n    a\n\n"
    assert yamlv3.dump({"k": " a\nb"}) == "k: |4-\n     a\n    b\n"
    assert yamlv3.dump(["a\nb"]) == "- |-\n  a\n  b\n"


def test_nesting_indentation():
    data = {"a": {"b": [{"c": [1, 2], "d": {"e": "f"}}, [3, [4]], {}, []], "g": {}}, "h": []}
    assert yamlv3.dump(data) == (
        "a:\n"
        "    b:\n"
        "        - c:\n"
        "            - 1\n"
        "            - 2\n"
        "          d:\n"
        "            e: f\n"
        "        - - 3\n"
        "          - - 4\n"
        "        - {}\n"
        "        - []\n"
        "    g: {}\n"
        "h: []\n"
    )


def test_other_scalars_and_documents():
    assert yamlv3.dump({"a": None, "b": True, "c": False, "d": 7, "e": 1.0, "f": 1e6, "g": 0.25}) == (
        "a: null\nb: true\nc: false\nd: 7\ne: 1\nf: 1e+06\ng: 0.25\n"
    )
    assert yamlv3.dump_all([{"a": 1}, {"b": 2}]) == "a: 1\n---\nb: 2\n"
    with pytest.raises(TypeError):
        yamlv3.dump({"a": object()})


def test_sort_keys_orders_like_go_maps():
    keys = ["b", "a10", "a2", "A", "a", "node.kubernetes.io/x", "1"]
    assert list(yamlv3.sort_keys(dict.fromkeys(keys))) == ["1", "A", "a", "a2", "a10", "b", "node.kubernetes.io/x"]
