"""Delivery transports: SMTP and LMTP over asyncio, and Maildir."""
