# Copyright (c) 2026 pve2node authors
# MIT License (see LICENSE in the collection root)
"""Runs pve2node.cluster.hosts_pin: the binary built for the target's architecture."""

from __future__ import annotations

from ansible_collections.pve2node.cluster.plugins.plugin_utils.binary_module import BinaryModuleAction


class ActionModule(BinaryModuleAction):
    pass
