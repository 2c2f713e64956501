"""A real Dovecot IMAP server in a temp directory, for tests (shared/TEST-COMPONENTS.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from closeloop.testing.postgres import free_port

USER, PASSWORD = "alice", "secret"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="closeloop-dovecot-"))
        os.chmod(self.dir, 0o755)  # noqa: S103  # dovecot's auth process must traverse it
        self.port = free_port()
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir()
        shutil.chown(self.dir / "mail", 65534, 65534)
        shutil.chown(self.dir / "home", 65534, 65534)
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (self.dir / "dovecot.conf").write_text(CONFIG.format(dir=self.dir, port=self.port))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        command = ["/usr/sbin/dovecot", "-F", "-c", str(self.dir / "dovecot.conf")]
        self.process = subprocess.Popen(command, start_new_session=True,  # noqa: S603  # fixed command
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {(self.dir / 'dovecot.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
