//! The device edge: status LED, systemd notify/watchdog.
