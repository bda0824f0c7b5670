"""FastAPI routers, one per resource of the API (HTTP only: the work is in ``service``)."""
