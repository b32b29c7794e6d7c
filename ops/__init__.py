"""Operator tooling: review and retry failed tasks, replay a reminders tick (python -m ops --help)."""
