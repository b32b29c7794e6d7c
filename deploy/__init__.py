"""Build tooling shared by deploy.sh and the local stack: the function registry and source staging."""
