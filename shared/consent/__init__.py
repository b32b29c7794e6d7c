"""Consent and its revocation: who may be sent what (docs/consent.md)."""
