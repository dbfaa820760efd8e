"""Encrypted credentials (arrives with the vault issue)."""
