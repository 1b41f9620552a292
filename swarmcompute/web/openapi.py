"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/v1/openapi.json``.

Hand-written next to the routes (``app.build_app``); ``tests/web`` checks it with
openapi-spec-validator and calls every route it declares.
"""

from __future__ import annotations

from typing import Any

from swarmcompute.api.messages import (
    HOLD_OUTCOMES,
    REQUEUE_OUTCOMES,
    SIGNAL_OUTCOMES,
    UPDATE_OPTIONS,
    UPDATE_OUTCOMES,
)
from swarmcompute.limits import MAX_SIGNALS
from swarmcompute.state.gangs import MAX_RANKS
from swarmcompute.state.job import JobState

JOB_OPTIONS: dict[str, Any] = {
    "argv": {
        "description": "the command: a list of arguments, or one string run by /bin/sh -c",
        "oneOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1}, {"type": "string"}],
    },
    "name": {"type": "string"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "cwd": {"type": "string"},
    "stdin": {
        "description": "what the job reads as its stdin, every attempt from its first byte (swarm run --stdin):"
        " text (within the request's 16 MiB), or [sha256, size] of a blob uploaded to this node first"
        " (PUT /api/v1/files/{sha}); without it, /dev/null",
        "oneOf": [
            {"type": "string"},
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2, "maxItems": 2},
        ],
    },
    "files": {
        "description": "files shipped with the job, each [path, sha256, size, mode]: their blobs uploaded to "
        "this node first (POST /api/v1/files/missing, PUT /api/v1/files/{sha}); the job runs in a "
        "directory of its own holding them, unless cwd is given",
        "type": "array",
        "items": {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "string"}, {"type": "integer"}, {"type": "integer"}],
        },
    },
    "timeout": {"description": "30s, 10m, 2h or seconds", "oneOf": [{"type": "string"}, {"type": "number"}]},
    "retries": {"type": "integer", "minimum": 0},
    "priority": {"type": "integer"},
    "cpus": {"type": "number", "minimum": 0},
    "mem": {"description": "512M, 2G or bytes", "oneOf": [{"type": "string"}, {"type": "integer"}]},
    "gpus": {"type": "integer", "minimum": 0},
    "gpu_mem": {
        "description": "each GPU has at least this much memory: 40G or bytes (implies gpus 1)",
        "oneOf": [{"type": "string"}, {"type": "integer"}],
    },
    "constraints": {
        "description": "node labels to match: K=V or K!=V, or a list of them",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
    "mounts": {
        "description": "SRC:DST or SRC:DST:ro, or a list of them: absolute host paths of the node that runs an image "
        "job, bind-mounted at DST in its container; refused there unless its user may read SRC (and write it, "
        "unless :ro)",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
    "after": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "after_any": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "node": {"type": "string", "description": "pin to a node (name or id)"},
    "image": {"type": "string", "description": "run in a Docker container of this image"},
    "on_disconnect": {"type": "string", "enum": ["stop", "keep"]},
    "job_id": {"type": "string", "description": "choose the id: resubmitting the same id is a no-op"},
    "array": {
        "type": "string",
        "description": "one job per index: 0-99, 1,3,5 or 0-99%10 (at most 10 at once); the id answered is the "
        "array's, which GET, DELETE and wait take",
    },
    "ranks": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_RANKS,
        "description": "a gang of this many ranks, run all at once or not at all; the id answered is the gang's, "
        "which GET, DELETE and wait take (its rank R is ID.R)",
    },
    "ranks_per_node": {
        "type": "integer",
        "minimum": 0,
        "description": "with ranks: exactly this many ranks on each node (0, the default: as many as fit)",
    },
    "keep": {
        "description": "keep only the files matching these patterns (gitignore syntax) that the job leaves",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
    "keep_on_exit": {"type": "boolean", "description": "an attached stream that ends early does not cancel it"},
    "hold": {"type": "boolean", "description": "submit it held: it waits until released (swarm release)"},
    "preemptible": {
        "type": "boolean",
        "description": "a job of a higher priority that finds no room elsewhere may stop it (SIGTERM, then SIGKILL)"
        " to run first; it runs again from the start, no retry spent",
    },
    "notify": {
        "type": "string",
        "description": "an http(s) URL the leader POSTs a JSON summary of the job to when it ends",
    },
    "signal": {
        "type": "string",
        "description": "SIG[@TIME], e.g. USR1@5m: sent to each attempt's main process TIME (default 60s) before its"
        " time limit (it needs a timeout), to checkpoint",
    },
    "every": {
        "description": "run it again every 1d, 6h, ... or seconds from its start: ID.1, ID.2, ... (a cancel ends it)",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    "begin": {
        "description": "not placed before: 30m, now+2h, 03:00, 2026-12-24T18:00 (the node's local time) or Unix seconds",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    "max_procs": {"type": "integer", "minimum": 0},
    "max_file_size": {"description": "64M or bytes", "oneOf": [{"type": "string"}, {"type": "integer"}]},
    "max_output": {
        "description": "output kept per attempt: 1G or bytes",
        "oneOf": [{"type": "string"}, {"type": "integer"}],
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


PROBLEM = {"$ref": "#/components/responses/Problem"}


def _op(
    summary: str, responses: dict[str, Any], *, params: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, "default": PROBLEM}}
    if params:
        op["parameters"] = params
    op.update(extra)
    return op


def _body(
    properties: dict[str, Any], *, required: tuple[str, ...] = (), optional: bool = False, closed: bool = False
) -> dict[str, Any]:
    """A JSON object request body of ``properties`` (``required`` ones; ``closed``: no others)."""
    schema: dict[str, Any] = {"type": "object"}
    if closed:
        schema["additionalProperties"] = False
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return {"required": not optional, "content": {"application/json": {"schema": schema}}}


def _outcomes(extra: dict[str, Any], outcomes: tuple[str, ...], description: str) -> dict[str, Any]:
    """``{"jobs": [{"id", "state", ..., "outcome"}]}``: what `swarm hold`, `release` or `update` did."""
    item = {
        "id": {"type": "string"},
        "state": {"type": "string", "enum": [s.value for s in JobState]},
        **extra,
        "outcome": {"type": "string", "enum": list(outcomes)},
    }
    jobs = {"type": "array", "items": {"type": "object", "properties": item}}
    return _json({"type": "object", "properties": {"jobs": jobs}}, description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def openapi_document() -> dict[str, Any]:
    job_ref = _path_param(
        "ref", "a job id, a unique prefix of one, a job name (the newest wins), or an array id (`array`)"
    )
    jobs_answer = _json({"type": "object", "properties": {"jobs": {"type": "array", "items": _ref("Job")}}})
    job_or_array = _json({"oneOf": [_ref("Job"), _ref("Array")]}, "the job; for an array id, the array")
    cancelled = _json(
        {"oneOf": [_ref("Job"), {"type": "array", "items": _ref("Job")}]},
        "the job; for an array id, its elements; each with `ended_before`: it had ended before this cancel",
    )
    sha_list = {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
    kept_files = {
        "type": "object",
        "properties": {
            "job_id": {"type": "string"},
            "attempt": {"type": "integer"},
            "node": {"type": "string"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "size": {"type": "integer"},
                        "mode": {"type": "integer"},
                        "sha256": {"type": "string"},
                    },
                },
            },
            "dropped": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "size": {"type": "integer"}, "why": {"type": "string"}},
                },
            },
        },
    }
    updated_answer = _outcomes(
        {},
        UPDATE_OUTCOMES,
        "what became of each job: updated, unchanged (it already was so) or not_pending (left as it is)",
    )
    update_changes = {
        **{k: JOB_OPTIONS[k] for k in UPDATE_OPTIONS},
        "node": {"type": "string", "description": "pin to a node (name or id); empty: unpin"},
        "timeout": {
            "description": "30s, 10m, 2h or seconds; 0 or none: no limit",
            "oneOf": [{"type": "string"}, {"type": "number"}],
        },
    }
    picked = {
        "jobs": {"type": "array", "items": {"type": "string"}},
        "name": {"type": "string", "description": "a shell pattern of the name"},
        "user": {"type": "string"},
        "all": {"type": "boolean", "description": "every pending job (no other selection)"},
    }
    held_answer = _outcomes(
        {"held": {"type": "boolean"}},
        HOLD_OUTCOMES,
        "what became of each job: held or released now, already so, or not pending (left as it is)",
    )
    requeued_answer = _outcomes(
        {"attempt": {"type": "integer", "description": "the attempt told to stop"}},
        REQUEUE_OUTCOMES,
        "what became of each job: requeued (its attempt stops, as lost, and it runs again), already (told to"
        " stop already), held (a pending element of an array requeued with hold: held with it) or"
        " not_placed (pending or ended: left as it is)",
    )
    requeue_hold = {"hold": {"type": "boolean", "description": "held once back, until released (swarm requeue --hold)"}}
    signalled_answer = _outcomes(
        {"attempt": {"type": "integer"}},
        SIGNAL_OUTCOMES,
        "what became of each job: signalled (its node sends it to the running attempt), not_running"
        f" (left as it is) or too_many (it was sent {MAX_SIGNALS} signals this attempt)",
    )
    signal_fields = {
        "signal": {
            "description": "a signal's name as `kill -l` lists it (USR1, SIGHUP, RTMIN+2) or its number; default TERM",
            "oneOf": [{"type": "string"}, {"type": "integer"}],
        },
        "group": {
            "type": "boolean",
            "description": "to the job's whole process group, not its main process alone (a Docker job's: its main process)",
        },
    }
    node_ref = _path_param("ref", "a node id or name")
    node_row = {"200": _json(_ref("Node"))}
    open_: dict[str, Any] = {"security": []}
    submit_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ref("JobSubmission"),
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": _ref("JobSubmission")}},
                        },
                        {"type": "array", "items": _ref("JobSubmission")},
                    ]
                }
            }
        },
    }
    submitted = _json(
        {
            "type": "object",
            "properties": {"id": {"type": "string"}, "ids": {"type": "array", "items": {"type": "string"}}},
        },
        "committed: the ids (and `id` for one job)",
    )
    paths: dict[str, Any] = {
        "/health": {
            "get": _op(
                "200 with role and quorum; 503 when quorum is lost",
                {"200": _json(_ref("Health")), "503": _json(_ref("Health"), "quorum lost")},
                **open_,
            )
        },
        "/ready": {
            "get": _op(
                "200 once the node knows a leader and a quorum holds",
                {"200": _json({"type": "object"}), "503": _json({"type": "object"}, "not ready")},
                **open_,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                **open_,
            )
        },
        "/api/v1/jobs": {
            "get": _op(
                "jobs, newest first, filtered and paged",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {"type": "array", "items": _ref("Job")},
                                "total": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "limit": {"type": "integer"},
                            },
                        }
                    )
                },
                params=[
                    _query(
                        "state",
                        {"type": "string"},
                        "only jobs in these states (comma-separated or repeated): "
                        + ", ".join(s.value for s in JobState),
                    ),
                    _query(
                        "node",
                        {"type": "string"},
                        "only jobs whose current attempt is on this node (name, id or id prefix)",
                    ),
                    _query(
                        "name",
                        {"type": "string"},
                        "only jobs whose name this shell pattern matches (sweep-*; without *?[: that name)",
                    ),
                    _query("user", {"type": "string"}, "only jobs this user submitted"),
                    _query("limit", {"type": "integer", "minimum": 0, "maximum": 1000, "default": 50}, "page size"),
                    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "jobs to skip"),
                    _query(
                        "grouped",
                        {"type": "boolean", "default": False},
                        "`swarm jobs`'s lines: an array or a gang counts once, as its first member with `group`"
                        " (`kind`, `id`, `size`, `counts` by state, `submitted_at`, `attempt`, `nodes`)",
                    ),
                ],
            ),
            "post": _op(
                "submit one job or many (the dicts Client.submit_many takes)",
                {"201": submitted},
                requestBody=submit_body,
            ),
        },
        "/api/v1/jobs/wait": {
            "post": _op(
                "wait until the jobs end (503 NodeStoppingError, with Retry-After, when the node stops meanwhile:"
                " ask again)",
                {"200": jobs_answer},
                requestBody=_body(
                    {"ids": {"type": "array", "items": {"type": "string"}}, "timeout": {"type": ["number", "null"]}},
                    required=("ids",),
                ),
            )
        },
        "/api/v1/jobs/prune": {
            "post": _op(
                "remove finished jobs and their output now (`swarm prune`), under the cluster's --keep-jobs "
                "and --keep-history or these bounds; never a job an unfinished one waits on",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "removed": {"type": "integer", "description": "jobs that left the table"},
                                "bytes": {"type": "integer", "description": "their output deleted on this node"},
                                "finished_kept": {"type": "integer"},
                                "held": {"type": "integer", "description": "kept: an unfinished job waits on it"},
                                "keep_jobs": {"type": "integer"},
                                "keep_s": {"type": "number"},
                            },
                        }
                    )
                },
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": ["object", "null"],
                                "additionalProperties": False,
                                "properties": {
                                    "older_than": {
                                        "description": "finished longer ago than this go: 2d, 12h or seconds",
                                        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}],
                                    },
                                    "keep": {
                                        "description": "at most this many finished jobs stay",
                                        "type": ["integer", "null"],
                                        "minimum": 0,
                                    },
                                },
                            }
                        }
                    },
                },
            )
        },
        "/api/v1/jobs/cancel": {
            "post": _op(
                "cancel the open jobs of the token's user (every user's for root's) that the body selects, as"
                " `swarm cancel --state/--name/--node/--user/--all` does (at least one of them)",
                {"200": jobs_answer},
                requestBody=_body(
                    {
                        "state": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["pending", "assigned", "running"]},
                        },
                        "name": {"type": "string", "description": "a shell pattern of the name"},
                        "node": {"type": "string"},
                        "user": {"type": "string"},
                        "all": {"type": "boolean", "description": "every open job (no other selection)"},
                    },
                    closed=True,
                ),
            )
        },
        "/api/v1/jobs/requeue": {
            "post": _op(
                "send the placed jobs the body names (an array id: its elements; a gang's: its ranks), or the"
                " assigned and running jobs of the token's user (every user's for root's) that it selects, back"
                " to be placed again, as `swarm requeue`: each attempt is stopped as lost, not failed",
                {"200": requeued_answer},
                requestBody=_body({**picked, **requeue_hold}, closed=True),
            )
        },
        "/api/v1/jobs/{ref}/requeue": {
            "post": _op(
                "send the placed job (an array: its elements; a gang: its ranks) back to be placed again,"
                " as `swarm requeue`",
                {"200": requeued_answer},
                params=[job_ref],
                requestBody=_body(requeue_hold, closed=True, optional=True),
            )
        },
        **{
            f"/api/v1/jobs/{verb}": {
                "post": _op(
                    f"{verb} the jobs the body names (an array id: its elements; a gang's: its ranks), or the"
                    f" pending jobs of the token's user (every user's for root's) that it selects, as `swarm {verb}`",
                    {"200": held_answer},
                    requestBody=_body(picked, closed=True),
                )
            }
            for verb in ("hold", "release")
        },
        "/api/v1/jobs/update": {
            "post": _op(
                "change the pending jobs the body names (an array id: its elements; a gang's: its ranks), or"
                " those of the token's user (every user's for root's) that it selects, as `swarm update`: a job"
                " keeps its place in line within its priority, a held one stays held",
                {"200": updated_answer},
                requestBody=_body({**update_changes, **picked}, closed=True),
            )
        },
        "/api/v1/jobs/signal": {
            "post": _op(
                "send a signal to the running jobs the body names (an array id: its elements; a gang's: its"
                " ranks), or those of the token's user (every user's for root's) that it selects, as"
                " `swarm signal`: their node sends it to the running attempt's main process or process group",
                {"200": signalled_answer},
                requestBody=_body({**signal_fields, **picked}, closed=True),
            )
        },
        "/api/v1/jobs/{ref}/signal": {
            "post": _op(
                "send a signal to the running job (an array: its elements; a gang: its ranks), as `swarm signal`",
                {"200": signalled_answer},
                params=[job_ref],
                requestBody=_body(signal_fields, closed=True, optional=True),
            )
        },
        "/api/v1/jobs/{ref}/update": {
            "post": _op(
                "change the pending job (an array: its elements; a gang: its ranks), as `swarm update`",
                {"200": updated_answer},
                params=[job_ref],
                requestBody=_body(update_changes, closed=True),
            )
        },
        **{
            f"/api/v1/jobs/{{ref}}/{verb}": {
                "post": _op(
                    f"{verb} the job (an array: its elements; a gang: its ranks)",
                    {"200": held_answer},
                    params=[job_ref],
                )
            }
            for verb in ("hold", "release")
        },
        "/api/v1/jobs/{ref}": {
            "get": _op(
                "one job, with the tail of its output and, while its image is pulled, `pull`; or an array",
                {"200": job_or_array},
                params=[job_ref],
            ),
            "delete": _op("cancel the job (an array: every element)", {"200": cancelled}, params=[job_ref]),
        },
        "/api/v1/jobs/{ref}/cancel": {
            "post": _op("cancel the job (an array: every element)", {"200": cancelled}, params=[job_ref])
        },
        "/api/v1/jobs/{ref}/rerun": {
            "post": _op(
                "run an ended job again as a new job (swarm rerun): an array, its elements that did not succeed"
                " (all: every one); a gang, the same shape",
                {"201": submitted},
                params=[job_ref],
                requestBody=_body({"all": {"type": "boolean"}, "job_id": {"type": "string"}}, optional=True),
            )
        },
        "/api/v1/jobs/{ref}/logs": {
            "get": _op(
                "the job's output: plain text (its bytes as the job wrote them, no charset; a body that could "
                "not get all of the output ends without the chunked body's end: an incomplete transfer), "
                "or Server-Sent Events (Accept: text/event-stream or format=sse): "
                "`output` {attempt, stream, text; b64: the output's bytes, base64, only where the text is not them "
                "(bytes that are not UTF-8 are U+FFFD in text)}, `attempt` {attempt, node, text}, `notice` {text}, "
                "`progress` {attempt, text, done, pull} (the node pulls the job's image: at most one a second), "
                "`end` (the job)",
                {
                    "200": {
                        "description": "the output",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    }
                },
                params=[
                    job_ref,
                    _query("attempt", {"type": "integer", "minimum": 1}, "this attempt only (default: the latest)"),
                    _query(
                        "follow",
                        {"type": "string", "enum": ["0", "1", "true", "false"]},
                        "follow on into later attempts until the job ends",
                    ),
                    _query("from", {"type": "string", "enum": ["first", "latest"]}, "start at the first attempt"),
                    _query(
                        "attach",
                        {"type": "string", "enum": ["0", "1", "true", "false"]},
                        "this stream is the job's lifeline: if it closes before the job ends, the job is "
                        "cancelled a few seconds later (unless it was submitted with keep_on_exit)",
                    ),
                    _query("format", {"type": "string", "enum": ["text", "sse"]}, "sse: Server-Sent Events"),
                ],
            )
        },
        "/api/v1/jobs/{ref}/files": {
            "get": _op(
                "what the job's latest attempt that ran (or `attempt`) left in its staged directory, "
                "as `swarm cp JOB: --json` says it (a job that shipped no files keeps none: 409)",
                {"200": _json(kept_files)},
                params=[job_ref, _query("attempt", {"type": "integer", "minimum": 1}, "this attempt")],
            )
        },
        "/api/v1/jobs/{ref}/files/{path}": {
            "get": _op(
                "the bytes of one file the job left (`swarm cp JOB:PATH`), from whichever node holds "
                "them; `X-File-Mode` says its mode, in octal",
                {
                    "200": {
                        "description": "the file",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    }
                },
                params=[
                    job_ref,
                    _path_param("path", "the file's path in the listing (`files[].path`)"),
                    _query("attempt", {"type": "integer", "minimum": 1}, "this attempt"),
                ],
            )
        },
        "/api/v1/files/missing": {
            "post": _op(
                "which of these blobs (a file's sha256) this node lacks: upload only those, then submit "
                "a job whose `files` name them, through this node",
                {"200": _json({"type": "object", "properties": {"missing": sha_list}})},
                requestBody=_body({"sha256": sha_list}, required=("sha256",)),
            )
        },
        "/api/v1/files/{sha}": {
            "put": _op(
                "upload a blob: the body is the file's bytes, kept by this node once they hash to `sha` "
                "(a job submitted through this node may then ship it; `swarm --url URL run --upload`)",
                {
                    "201": _json(
                        {"type": "object", "properties": {"sha256": {"type": "string"}, "size": {"type": "integer"}}}
                    )
                },
                params=[_path_param("sha", "the sha256 of the bytes, 64 lowercase hex digits")],
                requestBody={
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
            )
        },
        "/api/v1/nodes": {
            "get": _op(
                "the nodes (without those gone a while: `all=1` lists them too, as `swarm nodes --all`)",
                {"200": _json({"type": "object", "properties": {"nodes": {"type": "array", "items": _ref("Node")}}})},
                params=[_query("all", {"type": "string", "enum": ["0", "1"]}, "also the nodes left or long dead")],
            )
        },
        "/api/v1/nodes/{ref}": {"get": _op("one node", {"200": _json(_ref("Node"))}, params=[node_ref])},
        "/api/v1/nodes/{ref}/drain": {
            "post": _op("drain the node (`swarm drain`): no new work, running jobs finish", node_row, params=[node_ref])
        },
        "/api/v1/nodes/{ref}/undrain": {
            "post": _op("take new work on the node again (`swarm undrain`)", node_row, params=[node_ref])
        },
        "/api/v1/nodes/{ref}/forget": {
            "post": _op(
                "forget a node gone for good (`swarm forget`): out of every node's view, peers.json and the "
                "configuration (a voter only while quorum holds); a live node is refused",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "was_voter": {"type": "boolean"},
                                "out_of_configuration": {"type": "boolean"},
                                "voters": {"type": "array", "items": {"type": "string"}},
                                "message": {"type": "string"},
                            },
                        }
                    )
                },
                params=[node_ref],
            )
        },
        "/api/v1/nodes/{ref}/labels": {
            "post": _op(
                "set the node's labels (`swarm label`): K=V sets K, K= removes it",
                node_row,
                params=[node_ref],
                requestBody=_body({"labels": {"type": "array", "items": {"type": "string"}}}, required=("labels",)),
            )
        },
        "/api/v1/cluster": {"get": _op("the cluster's status (`swarm status --json`)", {"200": _json(_ref("Status"))})},
        "/api/v1/sd": {
            "get": _op(
                "Prometheus http_sd targets: every node's host with the HTTP port it gossips "
                "(a node that says none, of an older release: this node's port)",
                {"200": _json({"type": "array", "items": {"type": "object"}})},
            )
        },
        "/api/v1/events": {
            "get": _op(
                "Server-Sent Events for dashboards: `status` (the cluster status; `recent_jobs`: the open jobs, newest first, then the newest ended ones, `jobs` in all; `recent_jobs_total`: how many jobs the cluster holds; `load_history`: each node's CPU use by node id, a point every 30 s for the last hour) on every change",
                {
                    "200": {
                        "description": "event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
                },
                params=[
                    _query(
                        "jobs",
                        {"type": "integer", "minimum": 0, "maximum": 1000},
                        "how many jobs each event carries at most (open ones first)",
                    )
                ],
            )
        },
        "/jobs": {"post": _op("the seeds' shape of POST /api/v1/jobs", {"201": submitted}, requestBody=submit_body)},
        "/jobs/{ref}": {
            "get": _op("the seeds' shape of GET /api/v1/jobs/{ref}", {"200": _json(_ref("Job"))}, params=[job_ref])
        },
    }
    job_props: dict[str, Any] = {
        k: {}
        for k in (
            "id name state reason message node attempt failures retries exit_code command argv cwd env timeout_s "
            "priority cpus mem_bytes gpus after after_any pinned_node image on_disconnect keep_on_exit submitted_at "
            "started_at finished_at output_truncated attempts output_tail gpu_mem constraints array_id array_index "
            "array_limit user max_procs max_file_size max_output_bytes files files_bytes stdin_bytes keep node_name pull mounts cpu_s max_rss_bytes max_rss_at_most usage_now held begin_at every_s occurrence every_next"
        ).split()
    }
    job_props["pull"] = {
        "description": "GET of one job: while its node pulls its image, how far (else null)",
        "type": ["object", "null"],
        "properties": {k: {"type": "integer"} for k in ("layers_done", "layers_total", "bytes_done", "bytes_total")}
        | {"image": {"type": "string"}, "done": {"type": "boolean"}, "elapsed_s": {"type": "number"}},
    }
    job_props["stale"] = {
        "description": "GET of one job: null, or why what this node shows may be out of date (cut off, or its"
        " Raft log not written)",
        "type": ["string", "null"],
    }
    job_props["state"] = {"type": "string", "enum": [s.value for s in JobState]}
    job_props["id"] = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "swarmcompute",
            "version": "1",
            "description": "Every node answers for the whole cluster; changes go through the leader. "
            "Every /api request needs `Authorization: Bearer TOKEN` (`swarm api-token create NAME`). "
            "Errors are RFC 9457 problem details whose `code` is the CLI's error class.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "an error (RFC 9457)",
                    "content": {"application/problem+json": {"schema": _ref("Problem")}},
                }
            },
            "schemas": {
                "JobSubmission": {"type": "object", "required": ["argv"], "properties": JOB_OPTIONS},
                "Job": {"type": "object", "required": ["id", "state"], "properties": job_props},
                "Array": {
                    "type": "object",
                    "description": "an array (`swarm show ARRAY`): counts by state, the %limit, each element",
                    "required": ["id", "kind", "state", "counts", "elements"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"const": "array"},
                        "name": {"type": "string"},
                        "state": {"type": "string"},
                        "message": {"type": "string"},
                        "size": {"type": "integer"},
                        "array_limit": {"type": "integer", "description": "at most this many at once (0: no limit)"},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "elements": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    k: {} for k in "index id state exit_code attempt node node_name message".split()
                                },
                            },
                        },
                    },
                },
                "Node": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "role": {"type": "string"},
                        "state": {"type": "string"},
                    },
                },
                "Status": {
                    "type": "object",
                    "required": ["cluster_id", "node_id", "nodes"],
                    "properties": {"nodes": {"type": "array", "items": _ref("Node")}},
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "quorum"],
                    "properties": {
                        "status": {"type": "string"},
                        "role": {"type": ["string", "null"]},
                        "leader": {"type": ["string", "null"]},
                        "quorum": {"type": "object"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string", "description": "the error class, as the CLI and Client raise it"},
                    },
                },
            },
        },
    }
