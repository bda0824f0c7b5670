"""In-process clusters for fast tests: the real engine, agents and API over the in-memory
registry and fake systemd (``cluster.py``), and what serves their API to fleetctl."""
