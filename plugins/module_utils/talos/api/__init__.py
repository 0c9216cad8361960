# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""A Talos machine API client (gRPC over TLS with grpclib, a hand-written protobuf codec)."""
