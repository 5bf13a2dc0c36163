# Copyright (c) 2026 pve2node authors
# MIT License (see LICENSE)
"""Stands in for the get-pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com
(unreachable here): pip from the interpreter's own ensurepip, then the packages ansible-test asked
for, from PyPI. Used only by tests/collection_sanity.sh, never shipped in the collection."""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# ansible-test runs this with a reduced environment; keep the machine's CA bundle (a proxy's CA).
cert = os.environ.get("PVE2NODE_PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
if os.path.isfile(cert):
    args = ["--cert", cert] + args
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"] + args)
