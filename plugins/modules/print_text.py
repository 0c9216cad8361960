# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netboot.talos developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work happens in the action plugin of the same name (plugins/action/print_text.py): the text is
# printed by the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: print_text
short_description: Print text for people, as it is, whatever the output callback
version_added: 0.2.0
description:
  - Prints O(text) on the controller's terminal line for line, without JSON quoting or escaping,
    so tables, summaries and settings can be read and copied as shown.
  - Works the same with any C(stdout_callback) and any user C(ansible.cfg).
  - Changes nothing.
extends_documentation_fragment:
  - netboot.talos.attributes
author:
  - netboot.talos developers (@netboot-talos)
options:
  text:
    description: The text; a list is printed one item per line.
    type: raw
    required: true
  title:
    description: A line printed before the text.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Prints only.
"""

EXAMPLES = r"""
- name: Show the node table
  netboot.talos.print_text:
    title: Kubernetes nodes
    text: "{{ kubernetes.table }}"
"""

RETURN = r"""
# Nothing beyond the common return values: the text is printed, not returned.
"""
