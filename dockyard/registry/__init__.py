"""The registry server: the OCI distribution API over the engine's content store layout."""
