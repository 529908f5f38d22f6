"""The series reference of docs/metrics.md, generated from gateway/metrics.py.

Every series is a module-level ``NAME = Counter|Gauge|Histogram(...)`` (or
``SupervisorCounter|SupervisorGauge(...)`` for the supervisor's own) in gateway/metrics.py
followed by a docstring that says when it moves. This script reads the
docstrings from the source, the names, types, labels, help, buckets and multiprocess
modes from the series themselves, and the label values bound at import (the fixed sets)
from a fresh registry, and writes the reference between the ``<!-- series -->`` markers:

    .venv/bin/python scripts/metrics_reference.py          # print the reference
    .venv/bin/python scripts/metrics_reference.py --write  # update docs/metrics.md
    .venv/bin/python scripts/metrics_reference.py --check  # exit 1 if the doc is stale

A series without a docstring is an error. ``make docs`` writes it; a unit test checks it.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "gateway" / "metrics.py"
DOC = ROOT / "docs" / "metrics.md"
START, END = "<!-- series -->", "<!-- /series -->"
KINDS = {
    "Counter": "Counter",
    "Gauge": "Gauge",
    "Histogram": "Histogram",
    "SupervisorCounter": "Counter",
    "SupervisorGauge": "Gauge",
}
"""Constructors of a series, and the kind each exports."""
MODES = {
    "livesum": "summed over live workers",
    "max": "the highest of all workers",
    "livemin": "the lowest of the live workers",
    "all": "one series per worker (pid label)",
}
UNLISTED_VALUES = {"BUILD_INFO"}
"""Series whose bound values are facts of the running process (a version), not a fixed set."""


@dataclass(frozen=True)
class Series:
    attribute: str
    kind: str
    docstring: str
    supervisor: bool = False
    """Exported by the supervisor alone (workers > 1), not by the workers."""


def declared(source: str) -> list[Series]:
    """Each series assignment in the module, in order, with the docstring after it."""
    body = ast.parse(source).body
    found: list[Series] = []
    for statement, following in zip(body, [*body[1:], None], strict=True):
        if not isinstance(statement, ast.Assign) or not isinstance(statement.value, ast.Call):
            continue
        call = statement.value.func
        if not isinstance(call, ast.Name) or call.id not in KINDS:
            continue
        target = statement.targets[0]
        assert isinstance(target, ast.Name)
        doc = ""
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = following.value.value
        if not doc:
            raise SystemExit(
                f"gateway/metrics.py: {target.id} has no docstring saying when it moves"
            )
        text = " ".join(doc.split()).replace("``", "`")  # reST literals to Markdown
        found.append(Series(target.id, KINDS[call.id], text, call.id.startswith("Supervisor")))
    return found


def exported(name: str, kind: str) -> str:
    if kind == "Counter":
        return f"`{name}_total`"
    if kind == "Histogram":
        return f"`{name}_bucket`, `{name}_sum`, `{name}_count`"
    return f"`{name}`"


def bound_values(metric: object) -> list[tuple[str, ...]]:
    """The label values bound at import, in the order they were bound."""
    # prometheus-client keeps its children by label values (private, but stable for years;
    # a change breaks this script and its test loudly, never the gateway).
    return list(getattr(metric, "_metrics", {}))


def label_values(labels: tuple[str, ...], bound: list[tuple[str, ...]]) -> str:
    if not bound or not labels:
        return ""
    if len(labels) == 2:  # group the second label's values under the first's
        groups: dict[str, list[str]] = {}
        for first, second in bound:
            groups.setdefault(first, []).append(second)
        parts = [
            f"`{first}`: " + ", ".join(f"`{v}`" for v in seconds)
            for first, seconds in groups.items()
        ]
        return f"{labels[0]} → {labels[1]}: " + "; ".join(parts)
    values = list(dict.fromkeys(v[0] for v in bound))
    return f"{labels[0]}: " + ", ".join(f"`{v}`" for v in values)


def reference() -> str:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # describe, never read other processes
    sys.path.insert(0, str(ROOT))
    from gateway import metrics

    every = [
        (series, getattr(metrics, series.attribute))
        for series in declared(SOURCE.read_text("utf-8"))
    ]
    lines = ["| series | type | labels |", "|---|---|---|"]
    for series, metric in every:
        row = (f"`{sampled_name(series, metric)}`", series.kind.lower(), labels_of(metric))
        lines.append("| {} | {} | {} |".format(*row[:2], row[2] or "none"))
    lines.append("")
    for series, metric in every:
        lines += section(series, metric)
    return "\n".join(lines).rstrip() + "\n"


def sampled_name(series: Series, metric: Any) -> str:
    name: str = metric._name
    return f"{name}_total" if series.kind == "Counter" else name


def labels_of(metric: Any) -> str:
    return ", ".join(f"`{label}`" for label in metric._labelnames)


def section(series: Series, metric: Any) -> list[str]:
    """One series: its facts, help, docstring, label values and buckets."""
    facts = [
        series.kind.lower(),
        f"exported as {exported(metric._name, series.kind)}",
        f"labels {labels_of(metric)}" if metric._labelnames else "no labels",
    ]
    mode = getattr(metric, "_multiprocess_mode", "")
    if series.supervisor:
        facts.append("exported by the supervisor, only with workers > 1")
    elif series.kind == "Gauge" and mode:
        facts.append(f"workers > 1: {MODES.get(mode, mode)}")
    facts.append(f"`gateway.metrics.{series.attribute}`")
    lines = [f"### `{sampled_name(series, metric)}`", "", "; ".join(facts) + ".", ""]
    lines += [f"*{metric._documentation}.*", "", series.docstring, ""]
    bound = [] if series.attribute in UNLISTED_VALUES else bound_values(metric)
    values = label_values(tuple(metric._labelnames), bound)
    if values:
        lines += [f"Label values: {values}.", ""]
    if series.kind == "Histogram":
        buckets = ", ".join(f"{b:g}" for b in metric._upper_bounds[:-1])
        lines += [f"Buckets (seconds): {buckets}, +Inf.", ""]
    return lines


def replaced(doc: str, table: str) -> str:
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC.relative_to(ROOT)} lacks the {START} ... {END} markers")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update docs/metrics.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/metrics.md is stale")
    args = parser.parse_args()
    table = reference()
    if not (args.write or args.check):
        sys.stdout.write(table)
        return 0
    doc = DOC.read_text("utf-8")
    wanted = replaced(doc, table)
    if args.check:
        if wanted != doc:
            print("docs/metrics.md is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
