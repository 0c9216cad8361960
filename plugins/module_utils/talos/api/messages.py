# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Talos API message schemas (field numbers from api/common, api/machine, api/storage protos)."""

from __future__ import annotations

from ansible_collections.netboot.talos.plugins.module_utils.talos.api.wire import Message


class Empty(Message):
    """google.protobuf.Empty: also the request of Version, Kubeconfig, ServiceList, Disks."""

    FIELDS = {}


class Status(Message):
    """google.rpc.Status (details are not decoded)."""

    FIELDS = {1: ("code", "int32", False), 2: ("message", "string", False)}


class Metadata(Message):
    FIELDS = {1: ("hostname", "string", False), 2: ("error", "string", False), 3: ("status", Status, False)}


def _response(item):
    """Every Talos unary reply is `repeated X messages = 1`."""
    return type(item.__name__ + "Response", (Message,), {"FIELDS": {1: ("messages", item, True)}})


class Data(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("bytes", "bytes", False)}


class VersionInfo(Message):
    FIELDS = {
        1: ("tag", "string", False),
        2: ("sha", "string", False),
        3: ("built", "string", False),
        4: ("go_version", "string", False),
        5: ("os", "string", False),
        6: ("arch", "string", False),
    }


class PlatformInfo(Message):
    FIELDS = {1: ("name", "string", False), 2: ("mode", "string", False)}


class FeaturesInfo(Message):
    FIELDS = {1: ("rbac", "bool", False)}


class Version(Message):
    FIELDS = {
        1: ("metadata", Metadata, False),
        2: ("version", VersionInfo, False),
        3: ("platform", PlatformInfo, False),
        4: ("features", FeaturesInfo, False),
    }


VersionResponse = _response(Version)


class BootstrapRequest(Message):
    FIELDS = {1: ("recover_etcd", "bool", False), 2: ("recover_skip_hash_check", "bool", False)}


class Bootstrap(Message):
    FIELDS = {1: ("metadata", Metadata, False)}


BootstrapResponse = _response(Bootstrap)


class Duration(Message):
    FIELDS = {1: ("seconds", "int64", False), 2: ("nanos", "int32", False)}


APPLY_MODES = {"reboot": 0, "auto": 1, "no_reboot": 2, "staged": 3, "try": 4}


class ApplyConfigurationRequest(Message):
    FIELDS = {
        1: ("data", "bytes", False),
        4: ("mode", "enum", False),
        5: ("dry_run", "bool", False),
        6: ("try_mode_timeout", Duration, False),
    }


class ApplyConfiguration(Message):
    FIELDS = {
        1: ("metadata", Metadata, False),
        2: ("warnings", "string", True),
        3: ("mode", "enum", False),
        4: ("mode_details", "string", False),
    }


ApplyConfigurationResponse = _response(ApplyConfiguration)


class ResetPartitionSpec(Message):
    FIELDS = {1: ("label", "string", False), 2: ("wipe", "bool", False)}


class ResetRequest(Message):
    FIELDS = {
        1: ("graceful", "bool", False),
        2: ("reboot", "bool", False),
        3: ("system_partitions_to_wipe", ResetPartitionSpec, True),
        4: ("user_disks_to_wipe", "string", True),
        5: ("mode", "enum", False),
    }


class Reset(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("actor_id", "string", False)}


ResetResponse = _response(Reset)


class Timestamp(Message):
    FIELDS = {1: ("seconds", "int64", False), 2: ("nanos", "int32", False)}


class ServiceEvent(Message):
    FIELDS = {1: ("msg", "string", False), 2: ("state", "string", False), 3: ("ts", Timestamp, False)}


class ServiceEvents(Message):
    FIELDS = {1: ("events", ServiceEvent, True)}


class ServiceHealth(Message):
    FIELDS = {
        1: ("unknown", "bool", False),
        2: ("healthy", "bool", False),
        3: ("last_message", "string", False),
        4: ("last_change", Timestamp, False),
    }


class ServiceInfo(Message):
    FIELDS = {
        1: ("id", "string", False),
        2: ("state", "string", False),
        3: ("events", ServiceEvents, False),
        4: ("health", ServiceHealth, False),
    }


class ServiceList(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("services", ServiceInfo, True)}


ServiceListResponse = _response(ServiceList)


class EtcdMemberListRequest(Message):
    FIELDS = {1: ("query_local", "bool", False)}


class EtcdMember(Message):
    FIELDS = {
        2: ("id", "uint64", False),
        3: ("hostname", "string", False),
        4: ("peer_urls", "string", True),
        5: ("client_urls", "string", True),
        6: ("is_learner", "bool", False),
    }


class EtcdMembers(Message):
    FIELDS = {
        1: ("metadata", Metadata, False),
        2: ("legacy_members", "string", True),
        3: ("members", EtcdMember, True),
    }


EtcdMemberListResponse = _response(EtcdMembers)


class EtcdMemberStatus(Message):
    FIELDS = {
        1: ("protocol_version", "string", False),
        2: ("db_size", "int64", False),
        3: ("db_size_in_use", "int64", False),
        4: ("leader", "uint64", False),
        5: ("raft_index", "uint64", False),
        6: ("raft_term", "uint64", False),
        7: ("raft_applied_index", "uint64", False),
        8: ("errors", "string", True),
        9: ("is_learner", "bool", False),
        10: ("member_id", "uint64", False),
        11: ("storage_version", "string", False),
    }


class EtcdStatus(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("member_status", EtcdMemberStatus, False)}


EtcdStatusResponse = _response(EtcdStatus)


class Disk(Message):
    FIELDS = {
        1: ("size", "uint64", False),
        2: ("model", "string", False),
        3: ("device_name", "string", False),
        4: ("name", "string", False),
        5: ("serial", "string", False),
        6: ("modalias", "string", False),
        7: ("uuid", "string", False),
        8: ("wwid", "string", False),
        9: ("type", "enum", False),
        10: ("bus_path", "string", False),
        11: ("system_disk", "bool", False),
        12: ("subsystem", "string", False),
        13: ("readonly", "bool", False),
    }


class Disks(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("disks", Disk, True)}


DisksResponse = _response(Disks)


# ---------------------------------------------------------------- backup: etcd snapshot and recovery

class EtcdSnapshotRequest(Message):
    FIELDS = {}


class EtcdRecover(Message):
    FIELDS = {1: ("metadata", Metadata, False)}


EtcdRecoverResponse = _response(EtcdRecover)


# ---------------------------------------------------------------- node removal (etcd leave, remove member)

class EtcdLeaveClusterRequest(Message):
    FIELDS = {}


class EtcdLeaveCluster(Message):
    FIELDS = {1: ("metadata", Metadata, False)}


EtcdLeaveClusterResponse = _response(EtcdLeaveCluster)


class EtcdRemoveMemberByIDRequest(Message):
    FIELDS = {1: ("member_id", "uint64", False)}


class EtcdRemoveMemberByID(Message):
    FIELDS = {1: ("metadata", Metadata, False)}


EtcdRemoveMemberByIDResponse = _response(EtcdRemoveMemberByID)

# ---------------------------------------------------------------- upgrade (api/machine/{machine,image,lifecycle}.proto)

UPGRADE_REBOOT_MODES = {"default": 0, "powercycle": 1}


class UpgradeRequest(Message):
    FIELDS = {
        1: ("image", "string", False),
        2: ("preserve", "bool", False),
        3: ("stage", "bool", False),
        4: ("force", "bool", False),
        5: ("reboot_mode", "enum", False),
    }


class Upgrade(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("ack", "string", False), 3: ("actor_id", "string", False)}


UpgradeResponse = _response(Upgrade)

REBOOT_MODES = {"default": 0, "powercycle": 1, "force": 2}


class RebootRequest(Message):
    FIELDS = {1: ("mode", "enum", False)}


class Reboot(Message):
    FIELDS = {1: ("metadata", Metadata, False), 2: ("actor_id", "string", False)}


RebootResponse = _response(Reboot)

CONTAINER_DRIVERS = {"containerd": 0, "cri": 1}
CONTAINERD_NAMESPACES = {"unknown": 0, "system": 1, "cri": 2}


class ContainerdInstance(Message):
    """common.ContainerdInstance."""

    FIELDS = {1: ("driver", "enum", False), 2: ("namespace", "enum", False)}


class ImageServicePullRequest(Message):
    FIELDS = {1: ("containerd", ContainerdInstance, False), 3: ("image_ref", "string", False)}


class ImageServicePullLayerProgress(Message):
    FIELDS = {1: ("status", "enum", False), 2: ("elapsed", Duration, False), 3: ("offset", "int64", False),
              4: ("total", "int64", False)}


class ImageServicePullProgress(Message):
    FIELDS = {1: ("layer_id", "string", False), 2: ("progress", ImageServicePullLayerProgress, False)}


class ImageServicePullResponse(Message):
    """oneof response: name (the pulled image, last message) or pull_progress."""

    FIELDS = {1: ("name", "string", False), 2: ("pull_progress", ImageServicePullProgress, False)}
    ONEOF = ("name",)


class InstallArtifactsSource(Message):
    FIELDS = {1: ("image_name", "string", False)}


class LifecycleServiceUpgradeRequest(Message):
    FIELDS = {1: ("containerd", ContainerdInstance, False), 2: ("source", InstallArtifactsSource, False)}


class LifecycleServiceInstallProgress(Message):
    """oneof response: message (installer output) or exit_code (last message; 0 is sent too)."""

    FIELDS = {1: ("message", "string", False), 2: ("exit_code", "int32", False)}
    ONEOF = ("message", "exit_code")


class LifecycleServiceUpgradeResponse(Message):
    FIELDS = {1: ("progress", LifecycleServiceInstallProgress, False)}


class CosiListOptions(Message):
    FIELDS = {}


class CosiListRequest(Message):
    """cosi.resource.ListRequest (COSI api/v1alpha1/state.pb.go)."""

    FIELDS = {1: ("namespace", "string", False), 2: ("type", "string", False), 3: ("options", CosiListOptions, False)}


class CosiMetadata(Message):
    FIELDS = {1: ("namespace", "string", False), 2: ("type", "string", False), 3: ("id", "string", False),
              4: ("version", "string", False), 5: ("owner", "string", False), 6: ("phase", "string", False)}


class CosiSpec(Message):
    FIELDS = {1: ("proto_spec", "bytes", False), 2: ("yaml_spec", "string", False)}


class CosiResource(Message):
    FIELDS = {1: ("metadata", CosiMetadata, False), 2: ("spec", CosiSpec, False)}


class CosiListResponse(Message):
    FIELDS = {1: ("resource", CosiResource, False)}


UPGRADE_METHODS = {
    "/machine.MachineService/Upgrade": (UpgradeRequest, UpgradeResponse, False),
    "/machine.MachineService/Reboot": (RebootRequest, RebootResponse, False),
    "/machine.ImageService/Pull": (ImageServicePullRequest, ImageServicePullResponse, True),
    "/machine.LifecycleService/Upgrade": (LifecycleServiceUpgradeRequest, LifecycleServiceUpgradeResponse, True),
    "/cosi.resource.State/List": (CosiListRequest, CosiListResponse, True),
}
# Addressed with `node` metadata, one node per stream: apid refuses `nodes` on COSI methods and
# appends its own field 1 to every streamed message, which these replies use themselves.
NODE_METADATA_METHODS = frozenset(("/machine.ImageService/Pull", "/machine.LifecycleService/Upgrade", "/cosi.resource.State/List"))

# ---------------------------------------------------------------- end of upgrade

MACHINE = "/machine.MachineService/"
# Full method name -> (request schema, reply schema, server streaming).
METHODS = {
    MACHINE + "Version": (Empty, VersionResponse, False),
    MACHINE + "Bootstrap": (BootstrapRequest, BootstrapResponse, False),
    MACHINE + "Kubeconfig": (Empty, Data, True),
    MACHINE + "ApplyConfiguration": (ApplyConfigurationRequest, ApplyConfigurationResponse, False),
    MACHINE + "Reset": (ResetRequest, ResetResponse, False),
    MACHINE + "ServiceList": (Empty, ServiceListResponse, False),
    MACHINE + "EtcdMemberList": (EtcdMemberListRequest, EtcdMemberListResponse, False),
    MACHINE + "EtcdStatus": (Empty, EtcdStatusResponse, False),
    "/storage.StorageService/Disks": (Empty, DisksResponse, False),
    # node removal
    MACHINE + "EtcdLeaveCluster": (EtcdLeaveClusterRequest, EtcdLeaveClusterResponse, False),
    MACHINE + "EtcdRemoveMemberByID": (EtcdRemoveMemberByIDRequest, EtcdRemoveMemberByIDResponse, False),
}

# backup: EtcdSnapshot streams common.Data; EtcdRecover is client streaming (the request is a stream of common.Data).
METHODS[MACHINE + "EtcdSnapshot"] = (EtcdSnapshotRequest, Data, True)
METHODS[MACHINE + "EtcdRecover"] = (Data, EtcdRecoverResponse, False)
CLIENT_STREAMING = {MACHINE + "EtcdRecover"}
METHODS.update(UPGRADE_METHODS)
