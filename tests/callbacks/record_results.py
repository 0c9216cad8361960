# Test-only callback: appends every task result as one JSON line to $NETBOOT_RECORD_FILE,
# so tests can assert on what Ansible itself reported (changed, failed, msg, diff).
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: record task results as JSON lines for the test suite
description: Writes one JSON object per task result to the file named by NETBOOT_RECORD_FILE.
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, status, result):
        path = os.environ.get("NETBOOT_RECORD_FILE")
        if not path:
            return
        entry = {
            "status": status,
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "result": result._result,
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)
