"""Prometheus ``/metrics`` (prometheus_client): read from the daemon at each scrape, nothing kept
between scrapes except the dashboard's load history.

Per node (label ``node``, the node's name; every node reports every node, as gossip sees it):
``swarm_node_up``, ``swarm_node_cpus``, ``swarm_node_cpu_percent``, ``swarm_node_load1``,
``swarm_node_memory_total_bytes``, ``swarm_node_memory_available_bytes``,
``swarm_node_disk_free_bytes``, ``swarm_node_gpus``, ``swarm_node_running_jobs``.

The cluster (from the replicated job table, so every node says the same): ``swarm_jobs{state}``,
``swarm_queue_depth``; counted since the cluster began (``JobTable.totals`` and
``JobTable.timings``, kept as the commands are applied and carried in snapshots, so they never go
down as history is pruned): ``swarm_jobs_submitted_total``, ``swarm_jobs_finished_total``,
``swarm_jobs_succeeded_total``, ``swarm_jobs_failed_total``, ``swarm_jobs_cancelled_total``,
``swarm_job_retries_total``, ``swarm_job_attempts_lost_total``, ``swarm_job_preemptions_total``
and the histograms ``swarm_job_placement_seconds`` (submitted to its first attempt given to a
node, once a job) and ``swarm_job_run_seconds`` (its last attempt's start to its end, once a job
that ended running: ``state.timings``). This node's view: ``swarm_raft_term``,
``swarm_raft_commit_index``, ``swarm_raft_applied_index``, ``swarm_raft_leader_changes_total``,
``swarm_raft_is_leader``, ``swarm_quorum_healthy``, ``swarm_members{state}``,
``swarm_peer_messages_sent_total``, ``swarm_peer_frames_posted_total`` (the frames that carried the
batched ones: ``transport.outbox``), ``swarm_peer_messages_received_total``,
``swarm_peer_messages_dropped_total``, ``swarm_peer_bytes_sent_total``, ``swarm_peer_bytes_received_total``,
``swarm_peer_connections``; the failure detector's ``swarm_gossip_probes_total``,
``swarm_gossip_probes_spared_total``, ``swarm_gossip_indirect_probes_total``, ``swarm_gossip_suspicions_total`` and
``swarm_gossip_declared_dead_total``; what the jobs that ended on this node used,
``swarm_executed_cpu_seconds_total`` and the histogram ``swarm_executed_peak_memory_bytes``
(process jobs that ended by themselves: ``executor.usage.UsageTally``); and the process's own
(``process_resident_memory_bytes``, ...).

A scrape walks the pending jobs once (for the queue depth), never the finished ones. Imported at
the first scrape: prometheus_client costs an idle daemon that nobody scrapes 1.3 MiB of RSS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from swarmcompute.executor.usage import PEAK_BUCKETS
from swarmcompute.state.job import JobState, Reason
from swarmcompute.state.timings import Histogram

if TYPE_CHECKING:
    from swarmcompute.api.node_api import NodeAPI

NODE_GAUGES = (
    ("swarm_node_cpus", "CPUs the node offers", "cpus"),
    ("swarm_node_cpu_percent", "CPU use of the whole machine, percent", "cpu_percent"),
    ("swarm_node_load1", "1-minute load average", "load_1m"),
    ("swarm_node_memory_total_bytes", "memory of the machine", "mem_total"),
    ("swarm_node_memory_available_bytes", "memory available", "mem_available"),
    ("swarm_node_disk_free_bytes", "free space where the state directory is", "disk_free"),
    ("swarm_node_running_jobs", "jobs assigned to or running on the node", "running_jobs"),
)


GOSSIP_COUNTERS = (
    ("swarm_gossip_probes", "failure-detector probes this node sent", "probes"),
    (
        "swarm_gossip_probes_spared",
        "probes not sent: the member had just answered (Raft, lease, gossip)",
        "probes_spared",
    ),
    ("swarm_gossip_indirect_probes", "probes unanswered in time, retried through other nodes", "indirect_probes"),
    ("swarm_gossip_suspicions", "nodes this node suspected (no answer to a probe)", "suspected"),
    ("swarm_gossip_declared_dead", "suspects this node declared dead", "declared_dead"),
)


class Metrics:
    def __init__(self, daemon: NodeAPI) -> None:
        self._daemon = daemon
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(daemon))
        ProcessCollector(registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Collector(Collector):
    def __init__(self, daemon: NodeAPI) -> None:
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        daemon = self._daemon
        status = daemon.status()
        yield from _nodes(status["nodes"])
        yield from _jobs(daemon)
        yield from _node_view(status, daemon.metrics())


def _nodes(nodes: Sequence[dict[str, Any]]) -> Iterator[Metric]:
    up = GaugeMetricFamily("swarm_node_up", "1 while gossip sees the node alive", labels=["node", "id"])
    gpus = GaugeMetricFamily("swarm_node_gpus", "GPUs the node advertises", labels=["node", "id"])
    gauges = [(GaugeMetricFamily(name, text, labels=["node", "id"]), key) for name, text, key in NODE_GAUGES]
    for node in nodes:
        labels = [node["name"] or node["id"], node["id"]]
        up.add_metric(labels, 1.0 if node["state"] == "alive" else 0.0)
        gpus.add_metric(labels, float(len(node.get("gpus") or ())))
        for family, key in gauges:
            value = node.get(key)
            if isinstance(value, (int, float)):
                family.add_metric(labels, float(value))
    yield up
    yield gpus
    for family, _ in gauges:
        yield family


JOB_COUNTERS = (
    ("swarm_jobs_succeeded", "jobs succeeded", "succeeded"),
    ("swarm_jobs_failed", "jobs failed", "failed"),
    ("swarm_jobs_cancelled", "jobs cancelled", "cancelled"),
    ("swarm_job_retries", "attempts run again after a failure (--retries)", "retried"),
    (
        "swarm_job_attempts_lost",
        "attempts that ended lost and ran again: a node lost or left, a requeue, a preemption",
        "lost",
    ),
    (
        "swarm_job_preemptions",
        "running --preemptible attempts told to stop for a job of a higher priority",
        "preempted",
    ),
)


def _jobs(daemon: NodeAPI) -> Iterator[Metric]:
    counts = daemon.table.counts()
    by_state = GaugeMetricFamily("swarm_jobs", "jobs by state", labels=["state"])
    for state, count in counts.items():
        by_state.add_metric([state], float(count))
    yield by_state
    totals = daemon.table.totals  # since the cluster began: never down as history is pruned
    finished = sum(totals[s.value] for s in JobState if s.is_terminal)
    yield CounterMetricFamily("swarm_jobs_submitted", "jobs submitted", value=totals["submitted"])
    yield CounterMetricFamily("swarm_jobs_finished", "jobs ended (succeeded, failed, cancelled)", value=finished)
    for name, text, key in JOB_COUNTERS:
        yield CounterMetricFamily(name, text, value=totals[key])
    # gang ranks that exited 0 and wait for the others: pending, but for no node
    done = sum(job.reason is Reason.RANK_DONE for job in daemon.table.pending_jobs())
    yield GaugeMetricFamily("swarm_queue_depth", "jobs waiting for a node", value=counts.get("pending", 0) - done)
    timings = daemon.table.timings  # since the cluster began, as the totals
    yield _histogram(
        "swarm_job_placement_seconds", "from submission to a node (first attempts, once a job)", timings.placement
    )
    yield _histogram("swarm_job_run_seconds", "run time of ended jobs (their last attempt)", timings.run)


def _histogram(name: str, text: str, h: Histogram) -> Metric:
    counts = h.cumulative()
    buckets = [(f"{b:g}", float(n)) for b, n in zip(h.bounds, counts, strict=False)]
    buckets.append(("+Inf", float(counts[-1])))
    return HistogramMetricFamily(name, text, buckets=buckets, sum_value=h.total)


def _node_view(status: dict[str, Any], view: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("swarm_raft_term", "the current Raft term", value=view["raft_term"])
    yield GaugeMetricFamily(
        "swarm_raft_commit_index", "the highest committed log index", value=view["raft_commit_index"]
    )
    yield GaugeMetricFamily(
        "swarm_raft_applied_index", "the highest applied log index", value=view["raft_applied_index"]
    )
    yield CounterMetricFamily(
        "swarm_raft_leader_changes", "leaders this node has seen elected", value=view["raft_leader_changes"]
    )
    yield GaugeMetricFamily(
        "swarm_raft_is_leader", "1 on the leader", value=1.0 if status["leader"] == status["node_id"] else 0.0
    )
    yield GaugeMetricFamily(
        "swarm_quorum_healthy", "1 while a quorum of voters holds", value=float(status["quorum"]["healthy"])
    )
    members = GaugeMetricFamily("swarm_members", "nodes by gossip state, as this node sees them", labels=["state"])
    for state in ("alive", "suspect", "dead", "left"):
        members.add_metric([state], float(view["members"].get(state, 0)))
    yield members
    yield CounterMetricFamily("swarm_peer_messages_sent", "peer messages sent", value=view["peer_messages_sent"])
    yield CounterMetricFamily(
        "swarm_peer_frames_posted", "frames that carried this node's Raft, lease and gossip messages",
        value=view["peer_frames_posted"],
    )  # fmt: skip
    yield CounterMetricFamily(
        "swarm_peer_messages_received", "peer messages received", value=view["peer_messages_received"]
    )
    yield CounterMetricFamily(
        "swarm_peer_messages_dropped",
        "peer messages dropped (queue full or malformed)",
        value=view["peer_messages_dropped"],
    )
    yield CounterMetricFamily("swarm_peer_bytes_sent", "bytes of peer messages sent", value=view["peer_bytes_sent"])
    yield CounterMetricFamily(
        "swarm_peer_bytes_received", "bytes of peer messages received", value=view["peer_bytes_received"]
    )
    yield GaugeMetricFamily("swarm_peer_connections", "open connections to peers", value=view["peer_connections"])
    for name, text, key in GOSSIP_COUNTERS:
        yield CounterMetricFamily(name, text, value=view["gossip"][key])
    yield CounterMetricFamily(
        "swarm_executed_cpu_seconds",
        "CPU seconds the jobs that ended on this node used (process jobs that ended by themselves)",
        value=view["executed_cpu_s"],
    )
    peaks, peak_sum = view["executed_peaks"]
    buckets = [(f"{b:g}", float(sum(peaks[: i + 1]))) for i, b in enumerate(PEAK_BUCKETS)]
    buckets.append(("+Inf", float(sum(peaks))))
    yield HistogramMetricFamily(
        "swarm_executed_peak_memory_bytes",
        "peak memory of the largest process of each job that ended on this node (at most: its bound)",
        buckets=buckets,
        sum_value=float(peak_sum),
    )
