"""Consent and compliance: who agreed to which messages, when recipients may be texted, and the evidence."""
