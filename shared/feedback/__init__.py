"""Follow-ups that act: the check-in, the survey and its routing (docs/feedback.md)."""
