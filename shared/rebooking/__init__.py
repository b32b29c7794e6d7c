"""Rebooking nudges and "we missed you" after a no-show (docs/rebooking.md)."""
