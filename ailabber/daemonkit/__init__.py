"""What spoold and remoted share: the loop (single instance, signals, rescans, systemd
notifications), the daemon command line, file-event hints, crash points for tests, setup
checks, and their YAML settings. The CLI imports only ``settings``, ``checks`` and ``lock``
from here."""
