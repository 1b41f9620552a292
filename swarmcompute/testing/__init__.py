"""Public test helpers: real daemons as real processes, stopped by PID."""
