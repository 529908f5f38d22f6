"""The pure parts of a reload: which changes need a restart, the summary line, and
when the watched files count as changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.reload import FileWatch, restart_only_changes, summary, watched_files
from tests.support.harness import base_raw_config


def config(**changes: Any) -> GatewayConfig:
    raw = base_raw_config(8080, "http://127.0.0.1:1", "http://127.0.0.1:2")
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return parse_config(raw)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"server__listen": "127.0.0.1:9000"}, "server.listen", id="listen"),
        pytest.param({"server__metrics_listen": "127.0.0.1:9"}, "server.metrics_listen", id="m"),
        pytest.param({"server__request_head_timeout": 3}, "server.request_head_timeout", id="h"),
        pytest.param({"session__redis_prefix": "x:"}, "session.redis_prefix", id="prefix"),
        pytest.param({"session__warm_cache": False}, "session.warm_cache", id="warm cache"),
    ],
)
def test_a_field_only_a_restart_applies_is_named(changes: dict[str, Any], field: str) -> None:
    (problem,) = restart_only_changes(config(), config(**changes))
    assert problem.startswith(f"{field}: cannot change while running")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"server__drain_delay": 1}, id="drain_delay"),
        pytest.param({"server__trusted_proxies": ["10.0.0.0/8"]}, id="trusted proxies"),
        pytest.param({"session__idle_timeout": "1h"}, id="idle timeout"),
        pytest.param({"session__secret": ["n" * 40, "test-secret-" + "x" * 40]}, id="secret"),
    ],
)
def test_fields_a_reload_applies_are_not_refused(changes: dict[str, Any]) -> None:
    assert restart_only_changes(config(), config(**changes)) == []


def test_a_changed_redis_url_is_named_without_its_value() -> None:
    raw_old = base_raw_config(8080, "http://127.0.0.1:1", "http://127.0.0.1:2")
    raw_old["session"] = {
        "store": "redis",
        "secret": "s" * 40,
        "redis_url": "redis://:old-password@127.0.0.1/0",
    }
    raw_new = copy.deepcopy(raw_old)
    raw_new["session"]["redis_url"] = "redis://:new-password@127.0.0.1/0"
    (problem,) = restart_only_changes(parse_config(raw_old), parse_config(raw_new))
    assert problem.startswith("session.redis_url: cannot change while running;")
    assert "password" not in problem


def test_the_summary_counts_routes_and_policies_and_names_other_sections() -> None:
    raw = base_raw_config(8080, "http://127.0.0.1:1", "http://127.0.0.1:2")
    new = copy.deepcopy(raw)
    new["routes"] = new["routes"][1:]  # tool removed
    new["routes"][0]["strip_prefix"] = False  # writers changed
    new["routes"].append({"name": "n", "path": "/n", "upstream": "http://h", "policy": "public"})
    new["policies"]["more"] = {"allow": [{"user": "alice"}]}
    new["server"]["drain_delay"] = 1
    line = summary(parse_config(raw), parse_config(new))
    assert line == (
        "4 routes (1 added, 1 removed, 1 changed), 3 policies (1 added, 0 removed, 0 changed), "
        "also changed: server"
    )


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def test_the_watch_sees_a_change_once_it_held_still_and_new_policy_files(tmp_path: Path) -> None:
    raw = base_raw_config(8080, "http://127.0.0.1:1", "http://127.0.0.1:2")
    raw["policy_files"] = ["policies/*.yaml"]
    del raw["policies"]["admins"]
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies" / "a.yaml", {"policies": {"admins": {"allow": [{"user": "a"}]}}})
    path = tmp_path / "gateway.yaml"
    write(path, raw)
    loaded = load_config(path)
    assert watched_files(path, loaded) == [path, tmp_path / "policies" / "a.yaml"]
    watch = FileWatch(path, loaded)
    assert not watch.changed()

    write(tmp_path / "policies" / "b.yaml", {"policies": {"b": {"allow": [{"user": "b"}]}}})
    assert not watch.changed()  # seen once: maybe still being written
    assert watch.changed()  # held still: a change
    before = watch.look()
    watch.loaded(before, load_config(path))
    assert not watch.changed()  # what was loaded is no change

    (tmp_path / "policies" / "b.yaml").unlink()  # a removed file is a change too
    watch.changed()
    assert watch.changed()
