"""The HTTP side of a node: REST API (``/api/v1``), Prometheus ``/metrics``, ``/health``, a live
dashboard at ``/``, all served by every node from the daemon's own asyncio loop (uvicorn's
``Server.serve`` as one more task).

Imported only by a daemon that serves HTTP (``--http-port``, default 7341); never by the CLI's
`swarm run` fast path. Requests are answered by the control socket's own code
(``ControlServer.answer``, ``OutputStream``), so a job submitted over HTTP goes the way one
submitted by `swarm run` does: committed through the leader, wherever it was asked.
"""
