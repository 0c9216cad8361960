"""The hand-written protobuf codec against the protobuf runtime itself.

Reference messages are declared here with descriptor_pb2 (field numbers written from
shared/reference/talos.md §4.3/§4.4) and encoded/decoded by google.protobuf, so the codec is checked
against an independent implementation, in both directions.
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import messages as m
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import wire

F = descriptor_pb2.FieldDescriptorProto


def _reference_classes():
    proto = descriptor_pb2.FileDescriptorProto(name="ref.proto", package="ref", syntax="proto3")

    def message(name, *fields):
        msg = proto.message_type.add(name=name)
        for number, field_name, kind, repeated, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind,
                                  label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = ".ref." + type_name

    message("Status", (1, "code", F.TYPE_INT32, False, None), (2, "message", F.TYPE_STRING, False, None))
    message("Metadata", (1, "hostname", F.TYPE_STRING, False, None), (2, "error", F.TYPE_STRING, False, None),
            (3, "status", F.TYPE_MESSAGE, False, "Status"))
    message("Duration", (1, "seconds", F.TYPE_INT64, False, None), (2, "nanos", F.TYPE_INT32, False, None))
    message("ApplyConfigurationRequest", (1, "data", F.TYPE_BYTES, False, None), (4, "mode", F.TYPE_INT32, False, None),
            (5, "dry_run", F.TYPE_BOOL, False, None), (6, "try_mode_timeout", F.TYPE_MESSAGE, False, "Duration"))
    message("ResetPartitionSpec", (1, "label", F.TYPE_STRING, False, None), (2, "wipe", F.TYPE_BOOL, False, None))
    message("ResetRequest", (1, "graceful", F.TYPE_BOOL, False, None), (2, "reboot", F.TYPE_BOOL, False, None),
            (3, "system_partitions_to_wipe", F.TYPE_MESSAGE, True, "ResetPartitionSpec"),
            (4, "user_disks_to_wipe", F.TYPE_STRING, True, None))
    message("EtcdMember", (2, "id", F.TYPE_UINT64, False, None), (3, "hostname", F.TYPE_STRING, False, None),
            (4, "peer_urls", F.TYPE_STRING, True, None), (6, "is_learner", F.TYPE_BOOL, False, None))
    message("EtcdMembers", (1, "metadata", F.TYPE_MESSAGE, False, "Metadata"), (3, "members", F.TYPE_MESSAGE, True, "EtcdMember"))
    message("EtcdMemberListResponse", (1, "messages", F.TYPE_MESSAGE, True, "EtcdMembers"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("ref." + name))
            for name in ("ApplyConfigurationRequest", "ResetRequest", "EtcdMemberListResponse")}


REF = _reference_classes()


def test_apply_request_matches_protobuf_bytes():
    ref = REF["ApplyConfigurationRequest"](data=b"version: v1alpha1\n" * 20, mode=1, dry_run=True)
    ref.try_mode_timeout.seconds = 90
    ours = m.ApplyConfigurationRequest.encode({"data": b"version: v1alpha1\n" * 20, "mode": 1, "dry_run": True,
                                               "try_mode_timeout": {"seconds": 90}})
    assert ours == ref.SerializeToString(deterministic=True)


def test_reset_request_matches_protobuf_bytes():
    ref = REF["ResetRequest"](graceful=True, reboot=True)
    for label in ("STATE", "EPHEMERAL"):
        ref.system_partitions_to_wipe.add(label=label, wipe=True)
    ours = m.ResetRequest.encode({"graceful": True, "reboot": True,
                                  "system_partitions_to_wipe": [{"label": "STATE", "wipe": True}, {"label": "EPHEMERAL", "wipe": True}]})
    assert ours == ref.SerializeToString(deterministic=True)


def test_decodes_what_protobuf_encodes_including_unknown_fields_and_errors():
    ref = REF["EtcdMemberListResponse"]()
    ok = ref.messages.add()
    ok.metadata.hostname = "10.0.0.2"
    ok.members.add(id=2**63 + 5, hostname="kube01", peer_urls=["https://10.0.0.2:2380"], is_learner=False)
    failed = ref.messages.add()
    failed.metadata.hostname = "10.0.0.3"
    failed.metadata.error = "connection refused"
    failed.metadata.status.code = 14
    data = ref.SerializeToString() + bytes([0x7A, 0x02, 0x68, 0x69])  # unknown field 15 (string "hi") skipped
    decoded = m.EtcdMemberListResponse.decode(data)
    first, second = decoded["messages"]
    assert first["members"][0]["id"] == 2**63 + 5 and first["members"][0]["hostname"] == "kube01"
    assert first["members"][0]["peer_urls"] == ["https://10.0.0.2:2380"]
    assert first["metadata"]["error"] == "" and first["legacy_members"] == []
    assert second["metadata"] == {"hostname": "10.0.0.3", "error": "connection refused", "status": {"code": 14, "message": ""}}


def test_negative_int_round_trips_as_protobuf_does():
    encoded = wire.encode(m.Duration, {"seconds": -3, "nanos": -1})
    assert wire.decode(m.Duration, encoded) == {"seconds": -3, "nanos": -1}
    assert len(encoded) == 2 * (1 + 10)  # ten-byte varints, as protobuf encodes negative int32/int64


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x08", b"\x0b"])
def test_truncated_or_unsupported_input_is_rejected(data):
    with pytest.raises(wire.DecodeError):
        m.ApplyConfigurationRequest.decode(data)
