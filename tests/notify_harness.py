"""A whole mailwright with its notification layer, in the test's process, on loopback.

:class:`NotifyServer` writes a configuration, builds the server's
:class:`~mailwright.server.app.Application` from it and starts it: the inbound
SMTP listener, the HTTP API and pages on uvicorn, the SMPP bind to a
:class:`~tests.smsc.FakeSmsc`, and delivery of every mail to Postfix's
smtp-sink. Running in-process lets a test drive a virtual clock (re-permission,
expiry, digest times) and call a sweep when it wants one; every byte still
goes over real sockets.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.dkim import format_key_record
from mailwright.config import load_config
from mailwright.notify.api.keys import create_key
from mailwright.notify.runtime import NotifyRuntime
from mailwright.server.app import Application
from tests.peers import SmtpSink, free_port
from tests.smsc import FakeSmsc

DOMAIN = "example.test"  # ours: From, unsubscribe address, DKIM


class VirtualClock:
    """A clock that only moves when told to (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class NotifyServer:
    """A running server, its peers, an API client with a key, and a virtual clock."""

    def __init__(
        self, app: Application, sink: SmtpSink, smsc: FakeSmsc, client: httpx.AsyncClient,
        key: Any, inbound_port: int, http_base: str,
    ) -> None:  # fmt: skip
        self.app = app
        self.sink = sink
        self.smsc = smsc
        self.api = client
        self.dkim_key = key
        self.inbound_port = inbound_port
        self.http_base = http_base
        self.clock = VirtualClock()
        self.events_log = app.config.server.events_log
        assert app.notify is not None
        self.notify: NotifyRuntime = app.notify
        self.notify.set_clock(self.clock)

    @property
    def store(self) -> Any:
        return self.notify.store

    async def mails(self, count: int, wait: float = 20.0) -> list[bytes]:
        """The first ``count`` messages smtp-sink received (CRLF restored)."""
        found = await asyncio.to_thread(self.sink.wait_for, count, wait)
        return [re.sub(rb"\r?\n", b"\r\n", message.content) for message in found]

    async def settle(self) -> None:
        """Wait for the sends in progress to be handed over."""
        await self.notify.dispatcher.drain()

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's DNS: our one key record."""
        if name.rstrip(b".") == f"s1._domainkey.{DOMAIN}".encode():
            return format_key_record(self.dkim_key).encode("ascii")
        return None


def _config(folder: Path, *, inbound: int, http: int, sink: int, smsc: str, extra: str) -> str:
    return f"""
[server]
hostname = "mx.{DOMAIN}"
spool = "{folder}/spool"
events_log = "{folder}/events.jsonl"
receivers = 1

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[domains]
local = ["{DOMAIN}"]

[routes]
"*" = "smtp://127.0.0.1:{sink}"

[queue]
retry_intervals = ["1s"]

[[dkim.sign]]
domain = "{DOMAIN}"
selector = "s1"
key = "{folder}/dkim.pem"

[http]
address = "127.0.0.1:{http}"

[sms]
smsc = "{smsc}"
sender_id = "Acme"
program = "Acme"

[notify]
store = "{folder}/notify.db"
from_address = "news@{DOMAIN}"
unsubscribe_address = "unsubscribe@{DOMAIN}"
sweep_interval = "1h"
{extra}
"""


@asynccontextmanager
async def notify_server(
    folder: Path, *, extra: str = "", route_port: int | None = None, smsc_delay: float = 0.0
) -> AsyncIterator[NotifyServer]:
    """Start the whole thing in ``folder``; stop it on the way out."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "dkim.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    inbound, http = free_port(), free_port()
    with SmtpSink(folder) as sink:
        async with FakeSmsc(answer_delay=smsc_delay) as smsc:
            path = folder / "mailwright.toml"
            path.write_text(
                _config(folder, inbound=inbound, http=http, sink=route_port or sink.port,
                        smsc=smsc.url, extra=extra)
            )  # fmt: skip
            app = Application(load_config(path))
            await app.start()
            try:
                assert app.notify is not None
                _, secret = await create_key(app.notify.store, "tests", time.time())
                base = f"http://127.0.0.1:{http}"
                headers = {"Authorization": f"Bearer {secret}"}
                async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                    server = NotifyServer(app, sink, smsc, client, key, inbound, base)
                    await smsc.wait_binds(1)
                    yield server
                    await server.settle()
            finally:
                await app.stop()
