"""Composition roots: the real adapters and services, built once per instance from one Settings.

`services.py` is the container every function draws from (each service is built on first use, so a
function builds, and imports, only what its entry points touch); each function folder has one module
here wiring its own entry points (task_handler.py, reminder_fanout.py, report_builder.py,
waitlist.py, campaigns.py), and its main.py only names them. Nothing in shared/ below this package imports it.
"""
