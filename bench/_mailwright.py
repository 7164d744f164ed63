"""`mailwright serve` as the system under test, from a generated TOML file in a temp folder.

The configuration mirrors the Postfix anchor: one inbound listener on a free loopback port,
example.test as the only relay domain, and a static route to the sink. The spool (fsync on,
the server's default) and the event log live in the run folder, which the caller deletes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from _procs import LOOPBACK, free_port, stop_group, wait_for_smtp

RELAY_DOMAIN = "example.test"

_CONFIG = """\
[server]
hostname = "mailwright.bench.test"
spool = {spool}
events_log = {events}
fsync = true
{extra}
[[listener]]
role = "inbound"
address = "{loopback}:{port}"

[domains]
relay = [{domains}]

[routes]
"{domain}" = "smtp://{loopback}:{sink_port}"
{routes}{tables}"""


def default_command() -> list[str]:
    """Return how to run the CLI: the venv's `mailwright` script, else `python -m mailwright`."""
    script = Path(sys.executable).parent / "mailwright"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mailwright"]


class MailwrightServer:
    """A `mailwright serve` subprocess relaying example.test from 127.0.0.1:`port` to the sink.

    `command` runs the CLI (see `default_command`); `serve_args` are added after
    `serve --config FILE` (for example `["--log-level", "WARNING"]`). `extra_tables` is TOML
    appended to the file (for example a `[[dkim.sign]]` entry, see `dkim_sign_table`).
    `extra_domains` maps more relay domains to the loopback port of their own sink.

    Use as a context manager: entering writes the TOML, starts the server in its own
    process group and waits for its SMTP greeting (RuntimeError with the tail of its
    output if it exits, TimeoutError if it does not greet in time); leaving sends SIGTERM,
    then SIGKILL after `grace` seconds. Standard output and error go to `serve.log`.
    """

    def __init__(
        self,
        root: Path,
        sink_port: int,
        command: list[str],
        serve_args: list[str] | None = None,
        startup_timeout: float = 30.0,
        grace: float = 10.0,
        server_settings: list[str] | None = None,
        extra_tables: str = "",
        extra_domains: dict[str, int] | None = None,
    ) -> None:
        self.root = root
        self._extra_domains = extra_domains or {}
        self._extra_tables = extra_tables
        self.port = free_port()
        self._sink_port = sink_port
        self._command = command
        self._serve_args = serve_args or []
        self._server_settings = server_settings or []
        self._startup_timeout = startup_timeout
        self._grace = grace
        self._proc: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None

    @property
    def config_path(self) -> Path:
        """The generated configuration file."""
        return self.root / "mailwright.toml"

    @property
    def events_path(self) -> Path:
        """The JSON-lines event log the server writes."""
        return self.root / "events.jsonl"

    @property
    def output_path(self) -> Path:
        """Where the server's standard output and error go."""
        return self.root / "serve.log"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> MailwrightServer:
        self.root.mkdir(parents=True)
        self._write_config()
        command = [*self._command, "serve", "--config", str(self.config_path), *self._serve_args]

        with open(self.output_path, "wb") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_smtp(self.port, time.monotonic() + self._startup_timeout, self._proc)
        except RuntimeError as error:
            self.close()
            raise RuntimeError(f"mailwright serve did not start: {error}; {self.tail()}") from None
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
        """Stop the server: SIGTERM to its process group, SIGKILL after the grace period."""
        if self._proc is not None:
            self.exit_status = stop_group(self._proc, grace=self._grace)
            self._proc = None

    def delivered(self) -> int:
        """Count `delivered` events in the event log (0 if there is no log yet)."""
        count = 0
        try:
            with open(self.events_path, "rb") as log:
                for line in log:
                    if b'"delivered"' not in line:
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and record.get("event") == "delivered":
                        count += 1
        except OSError:
            return 0
        return count

    def tail(self, lines: int = 5, limit: int = 600) -> str:
        """Return the end of the server's output on one line, at most `limit` characters."""
        try:
            text = self.output_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        joined = " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
        return joined if len(joined) <= limit else "..." + joined[-limit:]

    def _write_config(self) -> None:
        """Write the TOML configuration for this run."""
        domains = [RELAY_DOMAIN, *self._extra_domains]
        routes = "".join(
            f'"{domain}" = "smtp://{LOOPBACK}:{port}"\n'
            for domain, port in self._extra_domains.items()
        )
        self.config_path.write_text(
            _CONFIG.format(
                spool=_toml_string(str(self.root / "spool")),
                events=_toml_string(str(self.events_path)),
                loopback=LOOPBACK,
                port=self.port,
                domain=RELAY_DOMAIN,
                domains=", ".join(_toml_string(domain) for domain in domains),
                sink_port=self._sink_port,
                routes=routes,
                extra="".join(f"{line}\n" for line in self._server_settings),
                tables=self._extra_tables,
            )
        )


def dkim_sign_table(domain: str, selector: str, key: Path) -> str:
    """A `[[dkim.sign]]` entry: rsa signing of mail from `domain` with the key file `key`."""
    return (
        "\n[[dkim.sign]]\n"
        f"domain = {_toml_string(domain)}\n"
        f"selector = {_toml_string(selector)}\n"
        f"key = {_toml_string(str(key))}\n"
        'algorithm = "rsa"\n'
    )


def _toml_string(text: str) -> str:
    """Quote a string for TOML (a JSON string is a valid TOML basic string)."""
    return json.dumps(text)
