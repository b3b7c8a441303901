"""The running process: wiring (``daemon``), jobs (``scheduler``), SIGHUP (``reloader``),
liveness (``heartbeat``, ``systemd``) and JSON logs (``logging``). Test fault points are
``registry.faults``, shared with the registry's write path."""
