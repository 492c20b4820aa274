"""Random ids and tokens from the operating system's randomness (what ``secrets`` returns).

``secrets`` imports ``hmac`` and with it OpenSSL (~3 ms of every run); these are its
``token_hex`` and ``token_urlsafe``, written the same way.
"""

from __future__ import annotations

import binascii
import os


def hex_id(nbytes: int) -> str:
    """``secrets.token_hex(nbytes)``: run ids, marks."""
    return os.urandom(nbytes).hex()


def url_token(nbytes: int) -> str:
    """``secrets.token_urlsafe(nbytes)``: bearer tokens."""
    encoded = binascii.b2a_base64(os.urandom(nbytes), newline=False)  # base64.urlsafe_b64encode, without base64
    return encoded.translate(_URLSAFE).rstrip(b"=").decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")
