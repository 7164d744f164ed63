"""The SMTP protocol, as sans-IO state machines: bytes in, events and replies out."""
