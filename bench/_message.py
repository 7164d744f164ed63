"""A generated message of a chosen size with the header fields real mail carries.

The DKIM and authentication benchmarks sign, verify and evaluate this message. It looks
like a newsletter from an application server relayed by its domain's outbound MTA: two
Received fields, the originator and destination fields, Message-ID, a MIME multipart
body (text and HTML) and RFC 8058 one-click unsubscription fields, so that a signer
signs about a dozen fields as it would in production. The text is made from a fixed
seed, so every run hashes the same octets.
"""

from __future__ import annotations

import random

#: The From domain, d= domain and MAIL FROM domain of the generated message.
DOMAIN = "example.com"
SELECTOR = "bench"
AUTHOR = f"alice@{DOMAIN}"
MAIL_FROM = f"bounces@{DOMAIN}"
HELO = f"mail.{DOMAIN}"
CLIENT_IP = "192.0.2.25"
RECIPIENT = "bob@example.net"

_WORDS = [
    "account",
    "quarterly",
    "figures",
    "review",
    "meeting",
    "agenda",
    "schedule",
    "report",
    "invoice",
    "customer",
    "delivery",
    "update",
    "project",
    "release",
    "notes",
    "summary",
    "planning",
    "budget",
    "forecast",
    "revenue",
    "growth",
    "margin",
    "team",
    "office",
    "travel",
    "policy",
    "support",
    "service",
    "request",
    "feedback",
    "survey",
    "results",
    "analysis",
    "market",
    "product",
    "launch",
    "campaign",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "for",
    "on",
    "with",
    "at",
    "by",
    "from",
    "as",
    "is",
    "are",
    "was",
    "be",
    "this",
    "that",
]

_BOUNDARY = "=_bench_5f3c2a9e1d"


def _lines(rng: random.Random, budget: int, wrap: str = "{}", width: int = 72) -> str:
    """Lines of words (each put into `wrap`), CRLF-ended, at most `budget` octets in all."""
    out: list[str] = []
    total = 0
    words: list[str] = []
    while True:
        word = rng.choice(_WORDS)
        if len(" ".join([*words, word])) > width:
            line = wrap.format(" ".join(words)) + "\r\n"
            if total + len(line) > budget:
                break
            out.append(line)
            total += len(line)
            words = []
            if rng.random() < 0.15 and total + 2 <= budget:
                out.append("\r\n")
                total += 2
        words.append(word)
    return "".join(out)


def make_message(size: int = 10240, seed: int = 5322) -> bytes:
    """A CRLF message of exactly `size` octets (at least about 2 KB), header and body."""
    rng = random.Random(seed)
    header = (
        f"Received: from app01.internal.{DOMAIN} (app01.internal.{DOMAIN} [10.1.2.3])\r\n"
        f"\tby {HELO} (Postfix) with ESMTPS id 4QxYz7Kp2Lz1\r\n"
        f"\tfor <{RECIPIENT}>; Tue, 01 Dec 2026 10:15:02 +0000 (UTC)\r\n"
        f"Received: by app01.internal.{DOMAIN} (mailer 4.2, from userid 1001)\r\n"
        f"\tid 8F2E31A0; Tue, 01 Dec 2026 10:15:01 +0000 (UTC)\r\n"
        f'From: "Alice Example" <{AUTHOR}>\r\n'
        f'To: "Bob Receiver" <{RECIPIENT}>\r\n'
        "Cc: carol@example.org\r\n"
        f"Reply-To: support@{DOMAIN}\r\n"
        "Subject: Your December account summary and the figures for review\r\n"
        "Date: Tue, 01 Dec 2026 10:15:01 +0000\r\n"
        f"Message-ID: <20261201101501.8F2E31A0@app01.internal.{DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{_BOUNDARY}"\r\n'
        f"List-Unsubscribe: <mailto:unsubscribe@{DOMAIN}?subject=u-1001>,\r\n"
        f" <https://{DOMAIN}/unsubscribe/u-1001-7c1f2b>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "X-Mailer: bench-mailer 4.2\r\n"
        "\r\n"
    ).encode()
    opening = (
        "This is a multi-part message in MIME format.\r\n\r\n"
        f"--{_BOUNDARY}\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    middle = (
        f"\r\n--{_BOUNDARY}\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "<html><body>\r\n"
    )
    closing = f"</body></html>\r\n--{_BOUNDARY}--\r\n"
    room = size - len(header) - len(opening) - len(middle) - len(closing)
    if room < 200:
        raise ValueError(f"size {size} is too small for the generated header")

    text = _lines(rng, room // 2)
    html = _lines(rng, room - len(text) - 80, wrap="<p>{}</p>")
    body = opening + text + middle + html
    # Pad with one last HTML comment line so that the whole message has exactly `size` octets.
    pad = size - len(header) - len(body) - len(closing)
    if pad < 9:
        raise ValueError(f"size {size}: the generated body overshot by {9 - pad} octets")
    body += "<!--" + "x" * (pad - 9) + "-->\r\n" + closing
    message = header + body.encode()
    assert len(message) == size, (len(message), size)
    return message
