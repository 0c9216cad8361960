# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Live progress lines for long waits: one line per node per stage change, a short line while nothing changes.

The printer only formats; emit(line) puts a line in front of the person (Display on the controller).
"""

from __future__ import annotations

import time

from ansible_collections.netboot.talos.plugins.module_utils.talos.api import client

# Short stage names for progress lines; the summaries keep client.STAGE_TEXT.
TALOS_STAGES = {client.DOWN: "no answer", client.MAINTENANCE: "maintenance", client.UP: "configured and up",
                client.ERROR: "error"}


class Progress:
    """Formats the lines of one wait over nodes shown by name.

    names: key (what the poll loop calls the node, e.g. its IP) -> name shown. goal: what "done"
    is called in the periodic line ("up", "Ready"). every: seconds without a line before a
    periodic one. texts: stage -> words; stages without an entry are shown as they are.
    """

    def __init__(self, emit, names, goal, every=30.0, texts=None):
        self.emit = emit
        self.names = names
        self.goal = goal
        self.every = every
        self.texts = texts or {}
        self.width = max(len(name) for name in names.values())
        self.quiet_since = 0.0
        self.start = time.monotonic()
        self.stages = {}  # key -> (stage, outcome, when) of a rolling operation

    def text(self, stage):
        return self.texts.get(stage, stage)

    def line(self, key, words, seconds):
        self.emit("  %s  %s   %.1f s" % (self.names[key].ljust(self.width), words, seconds))
        self.quiet_since = seconds

    def change(self, key, previous, stage, seconds, detail=None):
        """A node's stage changed (previous None: first sight); detail is added for errors."""
        words = self.text(stage) if previous is None else "%s -> %s" % (self.text(previous), self.text(stage))
        if detail and stage == client.ERROR:
            words += ": " + detail
        self.line(key, words, seconds)

    def note(self, key, words):
        """Something done to a node (its config applied, say), now."""
        self.line(key, words, time.monotonic() - self.start)

    def tick(self, seconds, stages, done):
        """While nothing changes: every `every` seconds how many are done and where the others are."""
        if seconds - self.quiet_since < self.every:
            return
        others = ["%s: %s" % (self.names[key], self.text(stages.get(key))) for key in self.names if key not in done]
        waiting = "".join("; " + other for other in others)
        self.emit("  waiting %d s: %d of %d %s%s" % (seconds, len(done), len(self.names), self.goal, waiting))
        self.quiet_since = seconds

    # ---------------------------------------------------------------- rolling operations

    def stage(self, key, stage, outcome, seconds):
        """A stage of a rolling operation (Rollout.on_stage): outcome "started", "done" or "failed: <why>";
        seconds is the time the stage took."""
        self.stages[key] = (stage, outcome, time.monotonic())
        if outcome == "started":
            words = "%s ..." % stage
        elif outcome == "done":
            words = "%s done in %.1f s" % (stage, seconds)
        else:
            words = "%s %s (after %.1f s)" % (stage, outcome, seconds)
        self.note(key, words)

    def stage_tick(self):
        """The periodic line of a rolling operation: how many nodes are through, where the others are."""
        now = time.monotonic()
        stages, done = {}, set()
        for key in self.names:
            stage, outcome, since = self.stages.get(key, ("waiting its turn", "started", None))
            if outcome == "done":
                done.add(key)
            elif since is None or outcome != "started":
                stages[key] = stage if since is None else "%s %s" % (stage, outcome)
            else:
                stages[key] = "%s (%d s)" % (stage, now - since)
        self.tick(now - self.start, stages, done)


def stage_text(entry):
    """A Talos wait entry's stage in words for summaries and failures."""
    if entry["stage"] == client.ERROR:
        return "error: %s" % entry["error"]
    return client.STAGE_TEXT.get(entry["stage"], str(entry["stage"]))


def summary_line(label, entry, waited):
    """`label: stage text [version] [after N s]` for one node of a Talos wait."""
    line = "%s: %s" % (label, stage_text(entry))
    if entry["version"]:
        line += " " + entry["version"]
    if entry["reached"] and waited:
        line += " after %.1f s" % entry["seconds"]
    return line
