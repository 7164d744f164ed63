"""The notification layer's HTTP API: JSON over ``/v1``, API keys, problem+json errors.

:func:`create_app` builds the ASGI app ``mailwright serve`` runs on uvicorn;
:func:`create_key` makes the keys ``mailwright apikey create`` hands out.
"""

from __future__ import annotations

from mailwright.notify.api.app import create_app
from mailwright.notify.api.keys import KeyCache, authenticate, create_key

__all__ = ["KeyCache", "authenticate", "create_app", "create_key"]
