"""The running process: wiring (``daemon``), jobs (``scheduler``), SIGHUP (``reloader``),
liveness (``heartbeat``, ``systemd``), JSON logs (``logging``) and test fault points
(``faults``)."""
