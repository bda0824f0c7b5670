"""fleetd: a cluster scheduler for systemd units."""

__version__ = "0.1.0"
