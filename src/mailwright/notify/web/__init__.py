"""The recipient-facing pages: the preference centre, one-click unsubscribe, digest revert.

Reached through signed links in every message; the token in the URL is the only
authority (no cookie, no login). :func:`page_router` builds the FastAPI router;
:mod:`.view` and :mod:`.form` hold the pure parts (what the page shows, what a
submission means), :mod:`.pages` the HTTP edge.
"""

from __future__ import annotations

from mailwright.notify.web.pages import page_router

__all__ = ["page_router"]
