"""The fan-out's own environment: the queue its units go through and the function that runs them.

deploy.sh sets QUEUE_FANOUT (every QUEUE_* of shared/platform/resources.py) and FANOUT_UNIT_URL (the
reminder-fanout-unit function's URL); the local stack sets both from local/config.py. The unit
function's OIDC audience is its own URL, as the task handler's is.
"""

from __future__ import annotations

from shared.platform import env as envvars
from shared.platform import resources
from shared.tasks.queue import Target


def fanout_queue(environ: envvars.Environ | None = None) -> str:
    return envvars.text(envvars.environ(environ), "QUEUE_FANOUT", resources.QUEUE_FANOUT)


def unit_target(environ: envvars.Environ | None = None) -> Target:
    """Where units are POSTed, and the audience their tokens name; a missing URL fails by name."""
    url = envvars.required(envvars.environ(environ), "FANOUT_UNIT_URL", " (the reminder-fanout-unit URL)")
    return Target(url=url, audience=url)
