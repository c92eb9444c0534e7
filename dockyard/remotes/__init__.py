"""Remotes: the client side of OCI distribution registries (resolve, fetch, push, auth, credentials)."""
