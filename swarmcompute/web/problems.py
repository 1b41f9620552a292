"""Errors as RFC 9457 problem details (``application/problem+json``).

``code`` is the name of the ``SwarmError`` class, the same reason code the control socket sends
(``ErrorReply.kind``) and the Python client raises again; ``detail`` is its one line saying what to
do. ``type`` is ``urn:swarmcompute:error:<code>``.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from swarmcompute import errors

MEDIA_TYPE = "application/problem+json"
RETRY_STOPPING_S = 2
"""``Retry-After`` on a 503 from a stopping node: a restarted daemon serves again in about a second."""

_STATUS: tuple[tuple[type[errors.SwarmError], int], ...] = (
    (errors.ApiForbiddenError, 403),
    (errors.ApiAuthError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.JobNotFoundError, 404),
    (errors.AttemptNotFoundError, 404),
    (errors.NodeNotFoundError, 404),
    (errors.JobAlreadyExistsError, 409),
    (errors.NodeAliveError, 409),
    (errors.AmbiguousJobIdError, 400),
    (errors.InvalidJobSpecError, 400),
    (errors.ConfigError, 400),
    (errors.FrameTooLargeError, 413),  # a job or group too big to go to the other nodes
    (errors.FilesTooLargeError, 413),
    (errors.FilesError, 409),  # a shipped file's bytes wrong, a kept file not there (yet), ...
    (errors.ProtocolError, 400),
    (errors.WaitTimeoutError, 504),
    (errors.PartlySubmittedError, 503),  # the same submission again adds the rest
    (errors.ClusterError, 503),
)


def status_of(exc: errors.SwarmError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(status: int, code: str, detail: str, **extra: object) -> Response:
    body = {
        "type": f"urn:swarmcompute:error:{code}",
        "title": code,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="swarm"'} if status == 401 else None
    if code == "NodeStoppingError":
        headers = {"Retry-After": str(RETRY_STOPPING_S)}
    return Response(json.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(exc: errors.SwarmError) -> Response:
    return problem(status_of(exc), type(exc).__name__, str(exc))
