"""The web dashboard served at ``/ui`` by every fleetd (static assets, browser sessions)."""
