"""Random ids and tokens from the operating system's randomness (what ``secrets`` returns).

``secrets`` imports ``hmac`` and with it OpenSSL (~3 ms of every run); these are its
``token_hex`` and ``token_urlsafe``, written the same way.
"""

from __future__ import annotations

import base64
import os


def hex_id(nbytes: int) -> str:
    """``secrets.token_hex(nbytes)``: run ids, marks."""
    return os.urandom(nbytes).hex()


def url_token(nbytes: int) -> str:
    """``secrets.token_urlsafe(nbytes)``: bearer tokens."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode("ascii")
