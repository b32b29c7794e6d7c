"""Abandoned-booking recovery: nudges after a booking a patient started and left (docs/booking-recovery.md)."""
