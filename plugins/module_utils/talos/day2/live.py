# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Run a day-2 operation in the controller process, printing each node's stages as they happen.

A module cannot print while it runs; an action plugin can (Display reaches the terminal at once,
whatever the stdout callback). The day-2 code is written against the few parts of AnsibleModule it
uses (params, check_mode, _diff, fail_json, exit_json); ControllerModule gives those to an action
plugin, and Live turns a Rollout's on_stage reports into progress lines:

    def main(module, live):                       # the operation, as a module would write it
        ...
        runner = MyRollout(..., on_stage=live.on_stage)
        outcome = live.run(runner.run(plans, batch), [e["name"] for e in plans if e["changed"]])
        module.exit_json(changed=True, **outcome)

    class ActionModule(ActionBase):               # plugins/action/<name>.py
        def run(self, tmp=None, task_vars=None):
            super().run(tmp, task_vars)
            return live.run_action(self, SPEC, main, display.display)
"""

from __future__ import annotations

import asyncio

from ansible_collections.netboot.talos.plugins.module_utils import progress
from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client

PROGRESS_OPTIONS = dict(progress_every=dict(type="float", default=30))


class Exit(Exception):
    """exit_json/fail_json of a ControllerModule: ends the operation with this result."""

    def __init__(self, result):
        super().__init__(result.get("msg", ""))
        self.result = result


class ControllerModule:
    """What the day-2 operations ask of an AnsibleModule, for an action plugin on the controller."""

    def __init__(self, params, check_mode=False, diff=False):
        self.params, self.check_mode, self._diff = params, check_mode, diff

    def fail_json(self, msg, **result):
        raise Exit(dict(result, failed=True, msg=msg))

    def exit_json(self, **result):
        raise Exit(dict(result, changed=result.get("changed", False)))


class Live:
    """on_stage for a Rollout (or a subclass), and run() that prints a periodic line while a stage waits."""

    def __init__(self, emit, every=30.0):
        self.emit, self.every = emit, every
        self.printer = None

    def on_stage(self, entry, stage, outcome, seconds):
        if self.printer is not None:
            self.printer.stage(entry["name"], stage, outcome, seconds)

    def run(self, coroutine, names):
        """Run the operation's coroutine to completion; names are the nodes it takes through stages."""
        if not names:
            return client.run(coroutine)
        self.printer = progress.Progress(self.emit, {name: name for name in names}, "done", self.every)
        return client.run(self._ticking(coroutine))

    async def _ticking(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        while not task.done():
            await asyncio.wait({task}, timeout=min(1.0, self.every))
            if not task.done():
                self.printer.stage_tick()
        return task.result()


def run_action(action, argument_spec, main, emit):
    """Validate the task's arguments against argument_spec (which should include PROGRESS_OPTIONS) and
    run main(module, live) in this process; returns the task's result."""
    _validation, params = action.validate_argument_spec(argument_spec=argument_spec)
    module = ControllerModule(params, check_mode=action._task.check_mode, diff=action._task.diff)
    try:
        main(module, Live(emit, params.get("progress_every", 30.0)))
    except Exit as end:
        return end.result
    return dict(failed=True, msg="%s ended without a result" % action._task.action)
