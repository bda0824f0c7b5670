"""The ``fleetd`` command line (placeholder replaced below by the real daemon entry)."""
