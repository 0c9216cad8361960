# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""For tests/bench/site_play.py: seconds per task, appended as JSON lines to $NBT_BENCH_PHASES."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_phases
type: aggregate
short_description: Seconds per task, for the benchmark
description: Appends one JSON line per task (play, task, seconds) to the file named by NBT_BENCH_PHASES.
requirements: [enable in configuration]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_phases"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.play, self.task, self.rows = "", None, []

    def _close(self):
        if self.task is not None:
            self.rows.append({"play": self.play, "task": self.task[0], "seconds": round(time.perf_counter() - self.task[1], 3)})
        self.task = None

    def v2_playbook_on_play_start(self, play):
        self._close()
        self.play = play.get_name()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.task = (task.get_name(), time.perf_counter())

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["NBT_BENCH_PHASES"], "a", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(json.dumps(row) + "\n")
