"""`POST /auth`: check a login against its registry, as `docker login` asks the engine to.

Body: `{"username", "password", "serveraddress"}` (or `identitytoken` /
`registrytoken`; docker-py may send the address with a scheme).  The engine
keeps nothing: the CLI stores the credentials itself and sends them with each
pull and push.  Success is dockerd's `{"IdentityToken":"","Status":"Login
Succeeded"}`; refused credentials are a 401 in dockerd's words (`login attempt
to http://127.0.0.1:5012/v2/ failed with status: 401 Unauthorized`).
"""

from __future__ import annotations

from dockyard.api.errors import HttpError
from dockyard.api.http import Request, Response, json_response, run_blocking
from dockyard.api.routing import RouteTable
from dockyard.remotes import AuthConfig, Unauthorized

routes = RouteTable()


@routes.post(r"/auth")
async def login(req: Request) -> Response:
    auth = AuthConfig.from_json(await req.json())
    try:
        await run_blocking(req.services.images.login, auth)
    except Unauthorized as err:
        raise HttpError(401, err.message) from None
    return json_response({"IdentityToken": "", "Status": "Login Succeeded"})
