# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side netboot.talos.print_text: prints text for people exactly as given."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def as_text(value):
    """A string as it is; a list of lines joined by newlines."""
    if isinstance(value, (list, tuple)):
        return "\n".join(to_text(line) for line in value)
    return to_text(value)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("text", "title"))
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if "text" not in self._task.args:
            raise AnsibleActionFail("print_text: the option 'text' is required")
        text = as_text(self._task.args["text"]).rstrip("\n")
        title = as_text(self._task.args.get("title") or "")
        # Display writes straight to the terminal, past the callback, so no callback can escape or
        # re-wrap the text: what a person copies is what they see.
        display.display("\n".join(part for part in (title, text) if part))
        # The text is not returned: callbacks that print results would show it a second time, escaped.
        result.update(changed=False)
        return result
