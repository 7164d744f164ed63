"""OpenDKIM as a Postfix milter, signing rsa-2048, from a configuration in a temporary folder.

The anchor for the relay benchmark with signing: Debian's `opendkim` (install with
`DEBIAN_FRONTEND=noninteractive apt-get install -y opendkim opendkim-tools`; no daemon is
left running by the package here, and none is used). The harness runs its own instance in
the foreground (`opendkim -f -x FILE`) as root, listening on a UNIX socket in the run
folder: over TCP on loopback the milter exchange stalls on Nagle and delayed ACKs and runs
about 20 times slower (see /work/shared/NOTES.md).

The configuration matches what mailwright is given: sign mail from `Domain` with
`Selector` and `KeyFile` for clients in InternalHosts (loopback by default), relaxed
header and body canonicalisation, rsa-sha256, From oversigned. Everything else keeps
OpenDKIM's defaults. There is no syslog here, so it logs nothing; the harness checks the
signatures in what the sink received instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from _procs import stop_group

OPENDKIM = "/usr/sbin/opendkim"
INSTALL_HINT = (
    "OpenDKIM is missing: install it with "
    "`DEBIAN_FRONTEND=noninteractive apt-get install -y opendkim opendkim-tools`"
)

_CONFIG = """\
Mode                    s
Domain                  {domain}
Selector                {selector}
KeyFile                 {key}
Socket                  local:{socket}
PidFile                 {root}/opendkim.pid
UMask                   000
Canonicalization        relaxed/relaxed
SignatureAlgorithm      rsa-sha256
OversignHeaders         From
Syslog                  no
Background              no
AutoRestart             no
RequireSafeKeys         false
"""

# A UNIX socket path must fit in sockaddr_un.sun_path (108 octets with the final NUL).
_MAX_SOCKET_PATH = 107


def opendkim_version() -> str:
    """Return the installed OpenDKIM's version line, or "missing"."""
    try:
        done = subprocess.run([OPENDKIM, "-V"], capture_output=True, timeout=10.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return "missing"
    first = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
    return first[0].strip() if first else "unknown"


class OpenDkimMilter:
    """An `opendkim -f` process signing for `domain` on a UNIX socket below `root`.

    Use as a context manager: entering writes the configuration, starts OpenDKIM in its
    own process group and waits until its socket accepts a connection (RuntimeError with
    its output if it exits first, TimeoutError if the socket does not appear); leaving
    stops it (SIGTERM, then SIGKILL) and deletes the folder. `milter` is the value for
    Postfix's smtpd_milters.
    """

    def __init__(
        self,
        root: Path,
        key: Path,
        domain: str,
        selector: str,
        startup_timeout: float = 15.0,
    ) -> None:
        self.root = root
        self.socket_path = root / "opendkim.sock"
        self._key = key
        self._domain = domain
        self._selector = selector
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise RuntimeError(f"socket path too long for AF_UNIX: {self.socket_path}")

    @property
    def milter(self) -> str:
        return f"unix:{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> OpenDkimMilter:
        if not Path(OPENDKIM).exists():
            raise RuntimeError(INSTALL_HINT)
        self.root.mkdir(parents=True)
        config = self.root / "opendkim.conf"
        config.write_text(
            _CONFIG.format(
                domain=self._domain,
                selector=self._selector,
                key=self._key,
                socket=self.socket_path,
                root=self.root,
            )
        )
        output = self.root / "opendkim.out"
        with open(output, "wb") as out:
            self._proc = subprocess.Popen(
                [OPENDKIM, "-f", "-x", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_for_socket(output)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            stop_group(self._proc, grace=5.0)
            self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_for_socket(self, output: Path) -> None:
        deadline = time.monotonic() + self._startup_timeout
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                text = output.read_text(errors="replace").strip()[-400:]
                raise RuntimeError(f"opendkim exited {self._proc.returncode}: {text}")
            if self.socket_path.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    try:
                        probe.connect(str(self.socket_path))
                    except OSError:
                        pass
                    else:
                        return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"opendkim did not listen on {self.socket_path}")
            time.sleep(0.05)
