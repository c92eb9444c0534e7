"""Remotes: the client side of OCI distribution registries (resolve, fetch, push, auth, credentials).

Vocabulary:
  registry     a server speaking the OCI distribution API under `/v2/`; one
               per *domain* of a reference (`127.0.0.1:5001`, `docker.io`).
  host         where a domain's registry answers: itself, except Docker Hub
               (`docker.io` is served by `registry-1.docker.io`).
  repository   a reference's path on its registry (`apx/img`, `library/busybox`).
  insecure     a registry that may be spoken to over plain HTTP: localhost and
               127.0.0.0/8 (dockerd's default InsecureRegistryCIDRs) and ::1.
               HTTPS is tried first (without certificate checks) and plain
               HTTP after a transport failure; the choice is remembered.
  challenge    a `WWW-Authenticate` header of a 401: `Basic realm=…` (send the
               credentials with every request) or `Bearer realm=…,service=…,
               scope=…` (fetch a token from the realm with the credentials,
               then send the token; tokens are cached per scope).
  scope        what a token allows: `repository:apx/img:pull,push`.
  auth config  the credentials a client gives (X-Registry-Auth, POST /auth):
               username/password, or an identity or registry token.

Modules: `auth` (pure: auth configs, challenges, scopes), `hosts` (pure:
domain -> host, scheme and URLs), `platforms` (pure: which manifest of an
index), `errors`, `registry` (the HTTP client, urllib3).
"""

from .auth import AuthConfig, decode_registry_auth
from .errors import RegistryError, Unauthorized
from .registry import Registry, login

__all__ = ["AuthConfig", "Registry", "RegistryError", "Unauthorized", "decode_registry_auth", "login"]
