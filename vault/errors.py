"""The one exception the vault raises: a message that says what is wrong and how to fix it."""

from __future__ import annotations


class VaultError(Exception):
    """The vault cannot do what was asked; the message never contains a secret value."""
