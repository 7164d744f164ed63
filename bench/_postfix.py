"""A throwaway Postfix relay in a temporary folder: the anchor the benchmark compares against.

The instance has its own config_directory (main.cf, master.cf), queue_directory and
data_directory, listens only on 127.0.0.1 on a free port, relays example.test and hands
every message to the sink over SMTP through a bracketed transport (no MX lookup). It keeps
Postfix's defaults everywhere else: process limits, queue file fsync in cleanup (Postfix
has no switch to turn that off), connection caching, concurrency. Logs go to a file through
postlogd, since there is no syslog here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from _procs import LOOPBACK, free_port, pid_alive, wait_for_smtp

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
RELAY_DOMAIN = "example.test"

# Every service Postfix needs to take mail over SMTP and deliver it over SMTP, with the
# chroot column set to n (the temporary queue has no chroot jail prepared).
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
inet_interfaces = {loopback}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {domain}
transport_maps = inline:{{ {domain}=smtp:[{loopback}]:{sink_port} }}
alias_maps =
alias_database =
biff = no
"""

_MILTER_CF = """\
smtpd_milters = {milter}
non_smtpd_milters = {milter}
milter_default_action = tempfail
"""


class PostfixRelay:
    """A Postfix instance relaying example.test from 127.0.0.1:`port` to the sink.

    Use as a context manager: entering writes the configuration, runs `postfix -c DIR
    start` and waits for the SMTP greeting; leaving stops the instance (`postfix stop`,
    then SIGKILL of the master if it lingers) and deletes the folder, on every exit path.
    Raises RuntimeError when Postfix refuses to start, TimeoutError when it does not greet.

    `milter` (such as `unix:/path/opendkim.sock`) is set as smtpd_milters and
    non_smtpd_milters, with milter_default_action = tempfail, so that no message gets
    through unfiltered when the milter fails.
    """

    def __init__(
        self,
        root: Path,
        sink_port: int,
        startup_timeout: float = 30.0,
        milter: str | None = None,
    ) -> None:
        self.root = root
        self.milter = milter
        self.port = free_port()
        self._sink_port = sink_port
        self._startup_timeout = startup_timeout
        self._config = root / "etc"
        self._started = False

    @property
    def maillog(self) -> Path:
        """The file postlogd writes Postfix's log lines to."""
        return self.root / "maillog"

    def __enter__(self) -> PostfixRelay:
        try:
            self._write_config()
            self._run([POSTFIX, "-c", str(self._config), "start"])
            self._started = True
            wait_for_smtp(self.port, time.monotonic() + self._startup_timeout, None)
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

    def master_pid(self) -> int | None:
        """Return the pid of the running master process, from its pid file."""
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def delivered(self) -> int:
        """Count the log lines of messages sent to the sink over SMTP (status=sent)."""
        relay = f"relay={LOOPBACK}[{LOOPBACK}]:{self._sink_port},"
        try:
            with open(self.maillog, errors="replace") as log:
                return sum(1 for line in log if "status=sent" in line and relay in line)
        except OSError:
            return 0

    def queued(self) -> int:
        """Count the queue files still in Postfix's queues (0 once all is delivered)."""
        total = 0
        for queue in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _dirpath, _dirnames, files in os.walk(self.root / "queue" / queue):
                total += len(files)
        return total

    def close(self) -> None:
        """Stop the instance, wait for its master to exit, and delete the folder."""
        if self._started:
            pid = self.master_pid()
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run([POSTFIX, "-c", str(self._config), "stop"])
            if pid is not None:
                _wait_gone(pid, timeout=10.0)
                if pid_alive(pid):
                    # Children notice their master is gone and exit on their own.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
                    _wait_gone(pid, timeout=5.0)
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_config(self) -> None:
        """Create the folders and write main.cf and master.cf for this instance."""
        self._config.mkdir(parents=True)
        (self.root / "queue").mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", user="postfix", group="postfix")

        main_cf = _MAIN_CF.format(
            root=self.root,
            loopback=LOOPBACK,
            domain=RELAY_DOMAIN,
            sink_port=self._sink_port,
        )
        if self.milter is not None:
            main_cf += _MILTER_CF.format(milter=self.milter)
        listen = f"{LOOPBACK}:{self.port}".ljust(9)
        (self._config / "main.cf").write_text(main_cf)
        (self._config / "master.cf").write_text(_MASTER_CF.format(listen=listen))

    def _log_tail(self, lines: int = 5) -> str:
        """Return the last lines of the maillog (Postfix reports start failures there)."""
        try:
            text = self.maillog.read_text(errors="replace")
        except OSError:
            return "(no maillog)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _run(self, command: list[str]) -> None:
        """Run a Postfix command; RuntimeError with its output if it fails."""
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60.0,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            output = output or self._log_tail()
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {output}")


def postfix_version() -> str:
    """Return the installed Postfix version (mail_version), or "unknown"."""
    try:
        done = subprocess.run(
            [POSTCONF, "-d", "-h", "mail_version"],
            capture_output=True,
            timeout=10.0,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.decode().strip() or "unknown"


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until a process id is gone or a zombie, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
