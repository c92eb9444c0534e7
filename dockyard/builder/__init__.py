"""The builder: Dockerfiles, their context and their layer cache, turned into images by the engine."""
