"""Route lookup time against the number of routes: 3, 100 and 1,000.

    .venv/bin/python benchmarks/routing_scale.py [--rounds 5]

Times RouteTable.match alone (no normalisation, no memo) over one fixed mix of requests:
known hosts, unknown hosts under a wildcard, hosts no route names, paths of one to five
segments, some in another letter case, some read with ``fold``. The same mix runs against
each table; the best of ``--rounds`` rounds is printed per lookup. Exits 1 when 1,000
routes cost more than twice what 3 routes cost (docs/architecture.md, "Routing").
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from dataclasses import dataclass

from gateway.routing import RouteTable

SIZES = (3, 100, 1000)
ALLOWED_RATIO = 2.0


@dataclass(frozen=True)
class Route:
    name: str
    host: str | None
    path: str
    case_insensitive: bool = False


def routes(count: int) -> list[Route]:
    """``count`` routes shaped like a big deployment's: a host per team with a few paths,
    a few wildcards, a few host-less routes, one in ten ignoring case."""
    rng = random.Random(count)
    table = [
        Route("team0", "team0.apps.example.com", "/"),
        Route("wild", "*.apps.example.com", "/"),
        Route("any", None, "/"),
    ]
    paths = ["/api", "/api/v1", "/api/v2", "/ui", "/admin", "/grafana", "/grafana/admin"]
    while len(table) < count:
        index = len(table)
        roll = rng.random()
        if roll < 0.9:
            host: str | None = f"team{index // 4}.apps.example.com"
        elif roll < 0.95:
            host = f"*.team{index // 4}.apps.example.com"
        else:
            host = None
        table.append(Route(f"r{index}", host, rng.choice(paths), rng.random() < 0.1))
    return table[:count]


def requests() -> list[tuple[str, str, bool]]:
    rng = random.Random(3)
    hosts = [f"team{i}.apps.example.com" for i in range(0, 250, 7)]
    hosts += ["new.apps.example.com", "x.team9.apps.example.com", "other.org"]
    parts = ["api", "v1", "v2", "items", "42", "ui", "Admin", "grafana", "d", "static"]
    mix = []
    for _ in range(1000):
        path = "/" + "/".join(rng.choice(parts) for _ in range(rng.randrange(1, 6)))
        mix.append((rng.choice(hosts), path, rng.random() < 0.1))
    return mix


def per_lookup(table: RouteTable[Route], mix: list[tuple[str, str, bool]], rounds: int) -> float:
    def run() -> None:
        for host, path, fold in mix:
            table.match(host, path, fold=fold)

    return min(timeit.repeat(run, number=20, repeat=rounds)) / (20 * len(mix))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mix = requests()
    figures = {}
    for size in SIZES:
        figures[size] = per_lookup(RouteTable(routes(size)), mix, args.rounds)
        print(f"{size:>5} routes: {figures[size] * 1e6:6.2f} us per lookup")
    ratio = figures[max(SIZES)] / figures[min(SIZES)]
    verdict = "ok" if ratio <= ALLOWED_RATIO else f"over {ALLOWED_RATIO:.0f}x"
    print(f"{max(SIZES)} routes / {min(SIZES)} routes: {ratio:.2f}x ({verdict})")
    return 0 if ratio <= ALLOWED_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
