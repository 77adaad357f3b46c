#!/usr/bin/env python3
"""Let `ansible-test sanity --venv` bootstrap pip without the internet.

ansible-test downloads a pinned get-pip.py into ~/.ansible/test/cache/ unless a
copy is already there. This places a stand-in that bootstraps pip from the
interpreter's own ensurepip and then installs what ansible-test asked for from
the configured package index (PyPI is reachable; the download host is not).
"""
import os
import re
import sys

# ansible-test passes only HOME and PATH to what it runs; pip still needs the
# index and CA settings of the environment `make` ran in.
KEEP = ("PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
        "http_proxy", "https_proxy", "no_proxy")

STAND_IN = '''"""Offline stand-in for get-pip.py, written by agentops.runbooks scripts/ansible_test_offline.py."""
import ensurepip
import os
import subprocess
import sys

SAVED_ENV = %r
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
ensurepip.bootstrap(upgrade=True)
env = dict(os.environ)
env.pop("GET_PIP", None)
env.update(SAVED_ENV)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
'''


def pip_version():
    import ansible_test
    source = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
    with open(source) as handle:
        match = re.search(r"pip='([0-9.]+)'", handle.read())
    if not match:
        sys.exit("Cannot find the pip version ansible-test bootstraps in %s." % source)
    return match.group(1)


def main():
    path = os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % pip_version().replace(".", "_"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    saved = dict((k, v) for k, v in sorted(os.environ.items()) if k.startswith(KEEP))
    text = STAND_IN % (saved,)
    current = open(path).read() if os.path.exists(path) else None
    if current != text:
        with open(path, "w") as handle:
            handle.write(text)
    print(path)


if __name__ == "__main__":
    main()
