# Copyright (c) 2026 pve2node authors
# MIT License (see LICENSE in the collection root)
"""The action plugin behind every pve2node.cluster module.

Each module is a static binary, one per CPU architecture. Ansible runs a task through the
action plugin of the module's name; for pve2node those are all this class. It asks the target
for its architecture (``uname -m``, one extra command, skipped when the host variable
``pve2node_arch`` is set or facts were gathered), picks the binary built for it and then runs the task exactly as
Ansible's stock ``normal`` action would: same upload, same arguments file, same check mode,
diff mode, ``no_log``, ``environment``, ``async`` and result handling. A target of another
architecture gets one failure naming it, and nothing is uploaded.

Where the binaries are, relative to the collection root: x86_64 in ``plugins/modules/``
(the modules themselves, so ``ansible-doc`` and the module loader find them), every other
architecture in ``binaries/<uname -m>/``.
"""

from __future__ import annotations

import os

from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

display = Display()

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# `uname -m` of a Linux target -> where its binaries are, relative to COLLECTION_ROOT.
ARCH_DIRS = {
    "x86_64": ("plugins", "modules"),
    "aarch64": ("binaries", "aarch64"),
}


class BinaryModuleAction(NormalAction):
    """Runs the pve2node binary built for the target's architecture (see the module docstring)."""

    _pve2node_binary = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars if task_vars is not None else {}
        name = self.module_leaf_name()
        arch, error = self.target_arch(task_vars)
        if error is None:
            path = self.binary_path(name, arch)
            if path is None:
                error = (
                    "pve2node.cluster.%s has no binary for this target's architecture %r (uname -m); "
                    "the collection carries %s. Run it on one of those, or build the collection "
                    "for this architecture." % (name, arch, ", ".join(self.shipped_arches(name)))
                )
        if error is not None:
            return {"failed": True, "changed": False, "msg": error}
        display.vvv("pve2node: target architecture %s, module binary %s" % (arch, path), host=self._play_context.remote_addr)
        self._pve2node_binary = path
        return super().run(tmp, task_vars)

    def module_leaf_name(self):
        """hosts_pin for pve2node.cluster.hosts_pin (or a task that called it by a short name)."""
        action = getattr(self._task, "resolved_action", None) or self._task.action
        return action.rsplit(".", 1)[-1]

    def target_arch(self, task_vars):
        """(arch, None) from the host variable pve2node_arch, the gathered fact architecture or the
        target's `uname -m`, or (None, error)."""
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, {})
        arch = host_vars.get("pve2node_arch") or (host_vars.get("ansible_facts") or {}).get("architecture")
        if arch:
            return str(arch).strip(), None
        res = self._low_level_execute_command("uname -m", sudoable=False)
        out = (res.get("stdout") or "").strip()
        if res.get("rc") != 0 or not out:
            detail = (res.get("stderr") or res.get("stdout") or "").strip()
            return None, (
                "pve2node: could not read the target's architecture with `uname -m` (rc %s%s); "
                "the pve2node modules run on Linux x86_64 and aarch64 targets, or set the host "
                "variable pve2node_arch." % (res.get("rc"), (": " + detail[:200]) if detail else "")
            )
        return out.splitlines()[-1].strip(), None

    @staticmethod
    def binary_path(name, arch):
        """The binary of module `name` for `arch` inside this collection, or None."""
        parts = ARCH_DIRS.get(arch)
        if parts is None:
            return None
        path = os.path.join(COLLECTION_ROOT, *(parts + (name,)))
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None

    @classmethod
    def shipped_arches(cls, name):
        return [a for a in sorted(ARCH_DIRS) if cls.binary_path(name, a) is not None]

    def _configure_module(self, module_name, module_args, task_vars):
        # The stock lookup finds plugins/modules/<name> (x86_64); for another architecture only
        # the file uploaded changes (the last item is the path the binary is copied from, in
        # ansible-core 2.16 as in 2.19). Every other module (e.g. async_wrapper) is left alone.
        bits = super()._configure_module(module_name, module_args, task_vars)
        path = self._pve2node_binary
        if path is None or module_name.rsplit(".", 1)[-1] != self.module_leaf_name():
            return bits
        return tuple(bits[:-1]) + (path,)
