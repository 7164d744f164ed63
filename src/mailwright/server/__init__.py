"""The asyncio SMTP listener and the hooks through which the application decides."""

from mailwright.server.handler import ConnectionInfo, SessionHandler
from mailwright.server.listener import ListenerStatistics, SmtpListener
from mailwright.server.loop import install_event_loop_policy, new_event_loop

__all__ = [
    "ConnectionInfo",
    "ListenerStatistics",
    "SessionHandler",
    "SmtpListener",
    "install_event_loop_policy",
    "new_event_loop",
]
