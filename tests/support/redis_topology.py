"""Real Redis topologies for tests: a master, a replica and three Sentinels; a three-master
Cluster. Every process is a real redis-server on free loopback ports, set for quick
failovers (a missing master counts as down after 1 s) and quick resyncs (diskless, no delay).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from tests.support.redis_server import RedisServer, free_port

FAST_REPLICATION = [
    "--repl-diskless-sync",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
    "--repl-ping-replica-period",
    "1",
]
"""A replica (re)syncs at once instead of after the default 5 s diskless delay."""

MASTER_NAME = "hfgw"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds (generous: the test machine is shared)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def info(server: RedisServer, section: str = "replication") -> dict[str, Any]:
    with client(server) as conn:
        answer: dict[str, Any] = conn.info(section)
        return answer


class SentinelTopology:
    """A master, one replica (or ``replicas``) and three Sentinels watching them as
    ``MASTER_NAME``."""

    def __init__(
        self, *, replicas: int = 1, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
    ) -> None:
        first = RedisServer(args=FAST_REPLICATION)
        follow = [*FAST_REPLICATION, "--replicaof", "127.0.0.1", str(first.port)]
        self.servers = [first, *(RedisServer(args=follow) for _ in range(replicas))]
        self.sentinels = [
            RedisServer(
                sentinel=True,
                config=self._sentinel_config(first, down_after_ms, failover_timeout_ms),
            )
            for _ in range(3)
        ]

    @staticmethod
    def _sentinel_config(master: RedisServer, down_after_ms: int, failover_timeout_ms: int) -> str:
        return "\n".join(
            [
                "bind 127.0.0.1",
                "protected-mode no",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                "",
            ]
        )

    @property
    def nodes(self) -> list[str]:
        """The Sentinels as ``host:port`` (what ``session.redis_sentinel.nodes`` takes)."""
        return [s.address for s in self.sentinels]

    def start(self) -> SentinelTopology:
        for server in [*self.servers, *self.sentinels]:
            server.start()
        self.wait_healthy()
        return self

    def master(self) -> RedisServer:
        """The server the Sentinels name as master now."""
        with client(self.sentinels[0]) as conn:
            _, port = conn.sentinel_get_master_addr_by_name(MASTER_NAME)
        return next(s for s in self.servers if s.port == int(port))

    def replica(self) -> RedisServer:
        master = self.master()
        return next(s for s in self.servers if s is not master)

    def _settled(self) -> bool:
        """Every Sentinel agrees on the master, sees the replicas up and knows its two peers;
        every replica is linked to the master."""
        ports = set()
        for sentinel in self.sentinels:
            with client(sentinel) as conn:
                _, port = conn.sentinel_get_master_addr_by_name(MASTER_NAME)
                ports.add(int(port))
                replicas = conn.sentinel_slaves(MASTER_NAME)
                peers = conn.sentinel_sentinels(MASTER_NAME)
            if not replicas or any(r["flags"] != "slave" for r in replicas) or len(peers) < 2:
                return False
        if len(ports) != 1:
            return False
        master = next(s for s in self.servers if s.port in ports)
        return info(master)["role"] == "master" and all(
            replica.running
            and info(replica).get("master_link_status") == "up"
            and info(replica).get("master_port") == master.port
            for replica in self.servers
            if replica is not master
        )

    def wait_healthy(self, timeout: float = 40.0) -> None:
        wait_for(self._settled, "the Sentinel topology to settle", timeout)

    def failover(self) -> RedisServer:
        """Ask a Sentinel for a failover now (SENTINEL FAILOVER); the master it replaces."""
        old = self.master()
        with client(self.sentinels[0]) as conn:
            conn.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        return old

    def wait_switched(self, old: RedisServer, timeout: float = 40.0) -> None:
        """Wait until the failover away from ``old`` is over: another master, ``old`` its
        replica, every Sentinel agreeing."""
        wait_for(lambda: self.master() is not old and self._settled(), "the failover", timeout)

    def wait_promoted(self, old: RedisServer, timeout: float = 40.0) -> None:
        """Wait until another master took over from ``old`` and every other replica
        replicates from it (``old`` itself may still be waiting to be demoted)."""

        def promoted() -> bool:
            master = self.master()
            return master is not old and all(
                info(replica).get("master_link_status") == "up"
                and info(replica).get("master_port") == master.port
                for replica in self.servers
                if replica is not master and replica is not old
            )

        wait_for(promoted, "the promotion", timeout)

    def stop_replica(self) -> RedisServer:
        replica = self.replica()
        replica.stop()
        return replica

    def start_replica(self, replica: RedisServer) -> None:
        """Start ``replica`` again as a replica of the current master."""
        master = self.master()
        replica.args = [*FAST_REPLICATION, "--replicaof", "127.0.0.1", str(master.port)]
        replica.start()
        self.wait_healthy()

    def cleanup(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.cleanup()


class ClusterTopology:
    """Three Redis Cluster masters sharing the 16,384 slots, no replicas."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [
            RedisServer(
                args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                    "--cluster-port",
                    str(free_port()),
                ]
            )
            for _ in range(size)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url.removesuffix("/0")

    def start(self) -> ClusterTopology:
        for node in self.nodes:
            node.start()
        share = 16384 // len(self.nodes)
        for index, node in enumerate(self.nodes):
            last = 16383 if index == len(self.nodes) - 1 else (index + 1) * share - 1
            with client(node) as conn:
                conn.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        bus_port = self.nodes[0].args[self.nodes[0].args.index("--cluster-port") + 1]
        for node in self.nodes[1:]:
            with client(node) as conn:
                conn.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port, bus_port)
        wait_for(self.ok, "the cluster to agree on its slots")
        return self

    def ok(self) -> bool:
        """Every node says the cluster is ok and knows all the others."""
        for node in self.nodes:
            state = info_cluster(node)
            if state.get("cluster_state") != "ok" or state.get("cluster_known_nodes") != str(
                len(self.nodes)
            ):
                return False
        return True

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def info_cluster(node: RedisServer) -> dict[str, str]:
    with client(node) as conn:
        text = conn.execute_command("CLUSTER", "INFO")
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in str(text).split() if ":" in line)
