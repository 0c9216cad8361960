# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Day 2: running nodes follow their rendered configs (plan, rolling apply)."""
