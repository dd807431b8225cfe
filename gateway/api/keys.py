"""``GET /v1/keys/health`` (roles operator, admin): the health of every configured signing key.

Answers ``{"keys": [{alias, kind, state, days_to_expiry, not_after, last_check, last_error}],
"warning_days", "check_interval"}`` from the last checks of :mod:`gateway.pki.keyhealth` (this
process's; a request never starts a check, so callers cannot make the gateway sign canaries).
``state`` is ``ok``, ``warning``, ``expired``, ``not_yet_valid``, ``unreachable`` or ``unknown``
(not checked yet); ``last_error`` is ``{code, message, at}`` or null. A gateway without a key
file answers ``{"keys": []}``; a key file that cannot be read adds ``error`` (``KEY_CONFIG``).
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import Role, principal
from gateway.api.jsonutil import json_response
from gateway.pki.keyhealth import monitor
from gateway.services import SERVICES

HEALTH_ROLES = (Role.OPERATOR,)


async def get_keys_health(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    principal(request, *HEALTH_ROLES)
    keys = monitor(svc)
    if keys is None:
        return json_response({"keys": [], "warning_days":
                              svc.settings.signing.key_expiry_warning_days,
                              "check_interval": svc.settings.signing.key_check_interval})
    return json_response(keys.report())


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/keys/health", get_keys_health)
