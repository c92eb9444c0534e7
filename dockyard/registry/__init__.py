"""The registry server: the OCI distribution API (v1.1) over a content store of its own.

Vocabulary:
  repository  a name (`library/busybox`) under which manifests, tags and blobs
              are pushed; names and tags follow the distribution spec's grammar.
  blob        bytes named by their digest (layers, configs, manifests), kept once
              in a content store shared by every repository; a repository
              *holds* a blob once it was pushed or mounted there, and only then
              serves it.
  upload      a session that receives a blob's bytes (in one request or in
              chunks), then completes with the digest they must have.
  mount       giving a repository a blob another repository holds, without its bytes.
  manifest    an OCI image manifest or index, or a Docker schema 2 manifest or
              manifest list, stored byte for byte with the media type it was
              pushed as; a tag names one.

Modules: `server` (the `dockyard-registry` command), `http` (a small asyncio +
h11 server that streams bodies), `app` (the endpoints), `protocol` (routes,
names, ranges, Accept: pure), `manifests` (what a pushed manifest references:
pure), `storage` (the on-disk state and its crash safety), `auth` (htpasswd
Basic authentication), `errors` (the spec's error codes).
"""
