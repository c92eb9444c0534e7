"""Images: references, formats, the image store, and moving images in and out.

Vocabulary:
  reference   a name for an image: `[domain/]path[:tag][@digest]`, normalised
              as Docker does (`busybox` is `docker.io/library/busybox`);
              `reference` parses them.
  image ID    the digest of the image's config JSON (`sha256:…`), as Docker
              computes it; short IDs are its first 12 hex digits.
  manifest    the JSON that lists an image's config and layer blobs (OCI
              image manifest or Docker schema 2); an *index* (manifest list)
              points at one manifest per platform.
  config      the image config: platform, container defaults (Cmd, Env, …),
              history and `rootfs.diff_ids`.
  staged      found in an archive or layout, not yet committed (`staging`).

Modules: `reference`, `formats` (manifests, indexes, configs, platforms),
`store` (the SQLite image store), `staging`, `archive` (`docker save`
archives), `ocilayout`, `rootfs` (`docker import`), `changes` (`--change`),
`unpack` (layers into snapshots), `gc` (what can be freed).
"""
