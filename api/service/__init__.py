"""What the API does, without FastAPI: reads, writes and views over the Store.

``fleetctl --driver etcd`` calls these modules directly.
"""
