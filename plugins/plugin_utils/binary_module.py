# Copyright (c) 2026 pve2node authors
# MIT License (see LICENSE in the collection root)
"""The action plugin behind every pve2node.cluster module.

Each module is a static binary, one per CPU architecture. Ansible runs a task through the
action plugin of the module's name; for pve2node those are all this class.

The cache (the default path). Each binary is kept on the target at
``<cache>/<sha256 of the binary>/<module>`` (``<cache>``: the host/task variable
``pve2node_cache_dir``, default ``~/.cache/pve2node`` of the user the module runs as, i.e. the
become user under ``become``), and a task is ONE remote command: a POSIX shell script that
checks, with shell built-ins, that the cache directory, the hash directory and the binary are
owned by that user, the binary is executable and unchanged since it was installed (its mtime
equals the one of ``<cache>/<sha256>/.installed``, both set to a fixed date at install: a
changed byte makes it newer), that none of the three is writable by group or others (one
``find -perm``), and then ``exec``s ``<path> -`` with the task's arguments JSON on stdin (the
binaries read stdin for ``-``). The target's architecture (``uname -m``) is asked inside that
same command the first time a host is seen in a run and remembered per host for the run (in
Ansible's per-run controller temp dir), unless the host variable ``pve2node_arch`` or the
gathered fact ``architecture`` gives it.

When a check fails, the same command prepares the cache instead (``mkdir -p`` with umask 077;
refuses a directory owned by someone else or writable by group/others; tries running a tiny
script there, so a ``noexec`` mount is found) and the plugin uploads the binary through stdin
to a temporary name, where ``sha256sum`` must give the expected hash before it is renamed into
place (a half-written or tampered upload is never run); older hashes of the same module are
removed. Then the task runs as above: three commands the first time, one afterwards.

It falls back to Ansible's stock binary-module path (upload to a temporary directory, args
file, run, remove: seven remote operations), with one warning per host and run, when the cache
cannot be used: no home directory, a read-only or ``noexec`` cache, a cache owned by someone
else or writable by group or others, no ``sha256sum``, a connection that cannot pass stdin, or
``become_method: su`` (su reads its password from a terminal, so nothing can be passed on
stdin: Ansible does not pipeline through su either). It falls back silently for ``async``
tasks, with ``keep_remote_files``, and when ``pve2node_cache: false`` is set (a host or task
variable). Results, check mode, diff mode, ``no_log``, warnings, failures and ``environment:``
are those of the stock path: the same arguments, with the same ``_ansible_*`` keys, reach the
same binary, and its output is parsed by Ansible's own code. The one difference:
``_ansible_tmpdir`` is null (there is no remote temporary directory; as with Ansible's
pipelining).

Where the binaries are, relative to the collection root: x86_64 in ``plugins/modules/``
(the modules themselves, so ``ansible-doc`` and the module loader find them), every other
architecture in ``binaries/<uname -m>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Sequence

from ansible import constants as C
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

from ansible.module_utils.common.json import AnsibleJSONEncoder

try:  # ansible-core >= 2.19
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:  # ansible-core 2.16 .. 2.18
    Direction = get_module_encoder = None

display = Display()

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# `uname -m` of a Linux target -> where its binaries are, relative to COLLECTION_ROOT.
ARCH_DIRS = {
    "x86_64": ("plugins", "modules"),
    "aarch64": ("binaries", "aarch64"),
}

DEFAULT_CACHE_DIR = "~/.cache/pve2node"
# What the remote script prints on stdout when it did not exec the module (the module's own
# output is one JSON object and never starts with this).
MARK = "PVE2NODE-CACHE: "
# and on stderr, before exec, when it had to ask `uname -m`.
ARCH_MARK = "PVE2NODE-ARCH: "
# Both the installed binary and its marker get this mtime (touch -t, POSIX): any later write
# to the binary makes it newer than the marker, which `test -nt` (a built-in) sees.
STAMP = "197001020000"


class CacheRefused(Exception):
    """The cache cannot be used on this host; the message says why (the fallback's warning)."""


class BinaryModuleAction(NormalAction):
    """Runs the pve2node binary built for the target's architecture (see the module docstring)."""

    _pve2node_binary = None

    # ------------------------------------------------------------------ entry point

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars if task_vars is not None else {}
        name = self.module_leaf_name()
        host_vars = self._host_vars(task_vars)
        state = RunState(self._state_key(task_vars, host_vars))
        reason = self._cache_off_reason(task_vars, host_vars, state)
        if reason is None:
            try:
                return self._run_cached(tmp, task_vars, name, host_vars, state)
            except CacheRefused as refused:
                reason = str(refused)
                state.update(refused=reason)
                if not state.get("warned"):
                    state.update(warned=True)
                    display.warning(
                        "pve2node: the binary cache cannot be used on %s (%s); its pve2node "
                        "tasks run through Ansible's stock binary-module path for this run "
                        "(slower: the binary is uploaded every task). Set pve2node_cache: false "
                        "to silence this." % (self._host_name(task_vars), reason)
                    )
        display.vvv("pve2node: stock binary-module path (%s)" % reason, host=self._play_context.remote_addr)
        return self._run_stock(tmp, task_vars, name, host_vars, state)

    def _run_stock(self, tmp, task_vars, name, host_vars, state):
        arch, error = self.target_arch(task_vars, state)
        path = None
        if error is None:
            path = self.binary_path(name, arch)
            if path is None:
                error = self._no_binary_msg(name, arch)
        if error is not None:
            return {"failed": True, "changed": False, "msg": error}
        display.vvv("pve2node: target architecture %s, module binary %s" % (arch, path), host=self._play_context.remote_addr)
        self._pve2node_binary = path
        return super().run(tmp, task_vars)

    # ------------------------------------------------------------------ the cache path

    def _cache_off_reason(self, task_vars, host_vars, state):
        """None when the cache may be tried; else why not (silent unless it is a refusal)."""
        value = task_vars.get("pve2node_cache", host_vars.get("pve2node_cache", True))
        if isinstance(value, str) and "{{" in value:
            value = self._templar.template(value)
        if not boolean(value, strict=False):
            return "pve2node_cache is false"
        if self._task.async_val:
            return "async task"
        if C.DEFAULT_KEEP_REMOTE_FILES:
            return "keep_remote_files is set"
        if state.get("refused"):
            return "cache refused earlier in this run: %s" % state.get("refused")
        conn = self._connection
        if not getattr(conn, "has_pipelining", False) or getattr(conn._shell, "_IS_WINDOWS", False):
            self._refuse_later = "the %s connection cannot pass stdin to a command" % conn.transport
            return None
        become = conn.become
        if self._become_applies() and not getattr(become, "pipelining", True):
            self._refuse_later = (
                "become_method %s cannot pass stdin to the command it runs (it needs a terminal)"
                % getattr(become, "name", "?")
            )
        return None

    _refuse_later = None

    def _run_cached(self, tmp, task_vars, name, host_vars, state):
        if self._refuse_later:
            raise CacheRefused(self._refuse_later)
        cache = self._cache_dir(task_vars, host_vars)
        result = ActionBase.run(self, tmp, task_vars)  # the base checks (check mode, async)
        arch = self._known_arch(host_vars, state)
        # the binaries' hashes: only the one needed once the arch is known (cached for the run)
        shas = {}
        for a in ARCH_DIRS if arch is None else (arch,):
            path = self.binary_path(name, a)
            if path is not None:
                shas[a] = (RunState.sha256(path), path)
        if arch is not None and arch not in shas:
            return {"failed": True, "changed": False, "msg": self._no_binary_msg(name, arch)}

        module_name = self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        self._pve2node_binary = shas[arch][1] if arch else None
        # ansible-core 2.19 builds every binary module with the serialization profile "legacy"
        # (module_common.modify_module); older ones have no profiles (AnsibleJSONEncoder).
        profile = "legacy" if get_module_encoder is not None else None
        if profile is not None:
            args_json = json.dumps(module_args, cls=get_module_encoder(profile, Direction.CONTROLLER_TO_MODULE))
        else:
            args_json = json.dumps(module_args, cls=AnsibleJSONEncoder)
        env = self._compute_environment_string()
        addr = self._play_context.remote_addr

        for attempt in (1, 2):
            script = run_script(cache, name, {a: s[0] for a, s in shas.items()}, arch, env)
            res = self._low_level_execute_command(script, sudoable=True, in_data=args_json.encode("utf-8"))
            res, seen_arch = strip_arch_line(res)
            if seen_arch and seen_arch != arch:
                arch = seen_arch
                state.update(arch=arch)
            status = mark_of(res)
            if status is None:
                display.vvv("pve2node: ran %s from the cache (%s)" % (name, arch or "?"), host=addr)
                return self._finish(result, res, profile)
            if status.startswith("arch "):
                arch = status[5:].strip()
                state.update(arch=arch)
                return {"failed": True, "changed": False, "msg": self._no_binary_msg(name, arch)}
            if status.startswith("refused "):
                raise CacheRefused(status[8:].strip())
            if not status.startswith("upload") or attempt == 2:
                raise CacheRefused("unexpected answer from the cache check: %r (rc %s, stderr %r)" % (
                    status, res.get("rc"), (res.get("stderr") or "")[:200]))
            arch = status.split("arch=", 1)[1].strip() if "arch=" in status else arch
            if arch not in shas:
                path = self.binary_path(name, arch)
                if path is None:
                    state.update(arch=arch)
                    return {"failed": True, "changed": False, "msg": self._no_binary_msg(name, arch)}
                shas[arch] = (RunState.sha256(path), path)
            state.update(arch=arch)
            sha, path = shas[arch]
            display.vvv("pve2node: uploading %s (%s, sha256 %s) into the cache" % (name, arch, sha), host=addr)
            with open(path, "rb") as f:
                data = f.read()
            up = self._low_level_execute_command(upload_script(cache, name, sha), sudoable=True, in_data=data)
            status = mark_of(up)
            if status != "installed":
                raise CacheRefused((status or "the upload gave no answer (rc %s, stderr %r)" % (
                    up.get("rc"), (up.get("stderr") or "")[:200])).replace("refused ", "", 1))
        raise CacheRefused("the binary was installed but the cache check still fails")  # not reached

    def _finish(self, result, res, profile):
        """What ActionBase._execute_module and the normal action do with a module's output."""
        data = self._parse_returned_data(res, profile) if profile is not None else self._parse_returned_data(res)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        if "results" in data and (not isinstance(data["results"], Sequence) or isinstance(data["results"], str)):
            data["ansible_module_results"] = data["results"]
            del data["results"]
            display.warning("Found internal 'results' key in module return, renamed to 'ansible_module_results'.")
        remove_internal_keys(data)
        for key in ("stdout", "stderr"):
            if key in data and key + "_lines" not in data:
                data[key + "_lines"] = (data.get(key, None) or "").splitlines()
        return merge_hash(result, data)

    def _cache_dir(self, task_vars, host_vars):
        value = task_vars.get("pve2node_cache_dir", host_vars.get("pve2node_cache_dir")) or DEFAULT_CACHE_DIR
        if isinstance(value, str) and "{{" in value:
            value = self._templar.template(value)
        value = str(value).rstrip("/")
        if not (value.startswith("/") or value.startswith("~/")) or "\n" in value or "/../" in value + "/":
            raise CacheRefused(
                "pve2node_cache_dir %r must be an absolute path or start with ~/ (no ..)" % value
            )
        return value

    # ------------------------------------------------------------------ per host, per run

    def _become_applies(self):
        """Whether Ansible wraps the task's commands in become (as _low_level_execute_command)."""
        if self._connection.become is None:
            return False
        ruser = self._get_remote_user()
        buser = self.get_become_option("become_user")
        return bool(C.BECOME_ALLOW_SAME_USER or buser != ruser or not any((ruser, buser)))

    def _host_name(self, task_vars):
        return self._task.delegate_to or task_vars.get("inventory_hostname") or self._play_context.remote_addr

    def _host_vars(self, task_vars):
        if self._task.delegate_to:
            return task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, {})
        return task_vars

    def _state_key(self, task_vars, host_vars):
        host = self._host_name(task_vars)
        become = self._connection.become if self._become_applies() else None
        buser = self.get_become_option("become_user") if become is not None else ""
        return "%s|%s|%s|%s|%s" % (
            host, self._get_remote_user(), getattr(become, "name", ""), buser,
            task_vars.get("pve2node_cache_dir", host_vars.get("pve2node_cache_dir", "")),
        )

    def _known_arch(self, host_vars, state):
        arch = host_vars.get("pve2node_arch") or (host_vars.get("ansible_facts") or {}).get("architecture")
        return str(arch).strip() if arch else state.get("arch")

    # ------------------------------------------------------------------ the stock helpers

    def module_leaf_name(self):
        """hosts_pin for pve2node.cluster.hosts_pin (or a task that called it by a short name)."""
        action = getattr(self._task, "resolved_action", None) or self._task.action
        return action.rsplit(".", 1)[-1]

    def target_arch(self, task_vars, state=None):
        """(arch, None) from the host variable pve2node_arch, the gathered fact architecture, this
        run's earlier answer or the target's `uname -m`, or (None, error)."""
        arch = self._known_arch(self._host_vars(task_vars), state or {})
        if arch:
            return arch, None
        res = self._low_level_execute_command("uname -m", sudoable=False)
        out = (res.get("stdout") or "").strip()
        if res.get("rc") != 0 or not out:
            detail = (res.get("stderr") or res.get("stdout") or "").strip()
            return None, (
                "pve2node: could not read the target's architecture with `uname -m` (rc %s%s); "
                "the pve2node modules run on Linux x86_64 and aarch64 targets, or set the host "
                "variable pve2node_arch." % (res.get("rc"), (": " + detail[:200]) if detail else "")
            )
        arch = out.splitlines()[-1].strip()
        if state is not None:
            state.update(arch=arch)
        return arch, None

    def _no_binary_msg(self, name, arch):
        return (
            "pve2node.cluster.%s has no binary for this target's architecture %r (uname -m); "
            "the collection carries %s. Run it on one of those, or build the collection "
            "for this architecture." % (name, arch, ", ".join(self.shipped_arches(name)))
        )

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


# ---------------------------------------------------------------------- the remote scripts
# POSIX sh (dash, bash, busybox ash), run by Ansible's `/bin/sh -c` (through become when set).
# They end in a simple command: Ansible appends ` && sleep 0`.


def _q(s):
    return shlex.quote(s)


def cache_dir_lines(cache):
    """Sets d to the cache directory; refuses when it is under a missing home."""
    if cache.startswith("~/"):
        return [
            '[ -n "${HOME:-}" ] && [ -d "$HOME" ] || { echo "%srefused no home directory (HOME=${HOME:-})"; exit 0; }' % MARK,
            'd="$HOME"/%s' % _q(cache[2:]),
        ]
    return ["d=%s" % _q(cache)]


def run_script(cache, module, shas, arch, env):
    """The one command of a task: exec the cached binary with the args on stdin, or prepare the
    cache and print `upload arch=A` (or `refused WHY`, `arch A`)."""
    lines = ["umask 077"] + cache_dir_lines(cache)
    if arch is not None:
        lines.append("a=%s s=%s" % (_q(arch), shas[arch]))
    else:
        cases = " ".join("%s) s=%s ;;" % (a, s) for a, s in sorted(shas.items()))
        lines.append("a=$(uname -m)")
        lines.append('case $a in %s *) echo "%sarch $a"; exit 0 ;; esac' % (cases, MARK))
        lines.append('echo "%s$a" >&2' % ARCH_MARK)
    m = _q(module)
    lines += [
        'p="$d/$s/"%s k="$d/$s/.installed"' % m,
        'if [ -O "$d" ] && [ -O "$d/$s" ] && [ -O "$p" ] && [ -x "$p" ] && [ -O "$k" ] && '
        '[ ! "$p" -nt "$k" ] && [ ! "$k" -nt "$p" ] && '
        'find "$d" "$d/$s" "$p" -maxdepth 0 -perm /022 -exec false {} + 2>/dev/null; then',
        "  %sexec \"$p\" -" % ((env.strip() + " ") if env.strip() else ""),
        "fi",
        # not usable as it is: prepare it for an upload, or say why not
        'r() { echo "%srefused $*"; exit 0; }' % MARK,
        'mkdir -p "$d/$s" 2>/dev/null || r "cannot create $d/$s (read-only?)"',
        '[ -O "$d" ] && [ -O "$d/$s" ] || r "$d is not owned by $(id -un)"',
        'find "$d" "$d/$s" -maxdepth 0 -perm /022 -exec false {} + 2>/dev/null || r "$d is writable by group or others"',
        'command -v sha256sum >/dev/null 2>&1 || r "no sha256sum on the target"',
        't="$d/$s/.probe.$$"',
        "{ printf '#!/bin/sh\\nexit 0\\n' >\"$t\" && chmod 700 \"$t\" && \"$t\"; } >/dev/null 2>&1; x=$?",
        'rm -f "$t"',
        '[ "$x" = 0 ] || r "cannot run programs in $d (noexec?)"',
        'echo "%supload arch=$a"' % MARK,
    ]
    return "\n".join(lines)


def upload_script(cache, module, sha):
    """Reads the binary on stdin into a temporary name, checks its sha256, renames it into place
    (with its marker), removes older hashes of the module; prints `installed` or `refused WHY`."""
    m = _q(module)
    lines = ["umask 077"] + cache_dir_lines(cache) + [
        's=%s p="$d/%s/"%s k="$d/%s/.installed" t="$d/%s/.%s.$$"' % (sha, sha, m, sha, sha, module),
        'r() { rm -f "$t"; echo "%srefused $*"; exit 0; }' % MARK,
        'cat >"$t" || { cat >/dev/null; r "cannot write $t"; }',
        'set -- $(sha256sum "$t" 2>/dev/null)',
        '[ "${1:-}" = "$s" ] || r "the uploaded binary has sha256 ${1:-unknown}, expected $s"',
        'chmod 700 "$t" && : >"$k" && touch -t %s "$t" "$k" && mv -f "$t" "$p" || r "cannot install $p"' % STAMP,
        'for o in "$d"/*/%s; do' % m,
        '  [ "$o" = "$p" ] || [ ! -e "$o" ] || { rm -f "$o" "${o%/*}/.installed"; rmdir "${o%/*}" 2>/dev/null; }',
        "done",
        'echo "%sinstalled"' % MARK,
    ]
    return "\n".join(lines)


def mark_of(res):
    """The status the scripts printed, or None when the module ran (its output is JSON)."""
    out = res.get("stdout") or ""
    for line in reversed(out.splitlines()):
        if line.startswith(MARK):
            return line[len(MARK):].strip()
    return None


def strip_arch_line(res):
    """(res without the `uname -m` line on stderr, that arch or None)."""
    err = res.get("stderr") or ""
    if ARCH_MARK not in err:
        return res, None
    kept, arch = [], None
    for line in err.splitlines(True):
        if line.startswith(ARCH_MARK) and arch is None:
            arch = line[len(ARCH_MARK):].strip()
        else:
            kept.append(line)
    res = dict(res)
    res["stderr"] = "".join(kept)
    return res, arch


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunState:
    """What this run learned about one host (arch, a refusal, the warning given), shared by the
    forked task workers through a small file in Ansible's per-run controller temp dir (removed
    when the run ends)."""

    def __init__(self, key):
        self.path = None
        self.data = {}
        try:
            base = C.DEFAULT_LOCAL_TMP
        except (AttributeError, OSError):  # no per-run temp dir: no memory across tasks
            base = None
        if base and os.path.isdir(base):
            self.path = os.path.join(base, "pve2node-%s.json" % hashlib.sha256(key.encode()).hexdigest()[:24])
            try:
                with open(self.path) as f:
                    self.data = json.load(f)
            except (OSError, ValueError):
                self.data = {}

    @staticmethod
    def sha256(path):
        """sha256 of the file at path, remembered for the run by (path, size, mtime)."""
        st = os.stat(path)
        key = "%s|%d|%d" % (path, st.st_size, st.st_mtime_ns)
        base = getattr(C, "DEFAULT_LOCAL_TMP", None)
        memo = os.path.join(base, "pve2node-sha256.json") if base and os.path.isdir(base) else None
        known = {}
        if memo is not None:
            try:
                with open(memo) as f:
                    known = json.load(f)
            except (OSError, ValueError):
                known = {}
            if key in known:
                return known[key]
        digest = sha256_file(path)
        if memo is not None:
            known[key] = digest
            tmp = "%s.%d" % (memo, os.getpid())
            try:
                with open(tmp, "w") as f:
                    json.dump(known, f)
                os.replace(tmp, memo)
            except OSError:
                pass
        return digest

    def get(self, key, default=None):
        return self.data.get(key, default)

    def update(self, **kw):
        self.data.update(kw)
        if self.path is None:
            return
        tmp = "%s.%d" % (self.path, os.getpid())
        try:
            with open(tmp, "w") as f:
                json.dump(self.data, f)
            os.replace(tmp, self.path)
        except OSError:
            pass
