"""Reading Sentinel's answers (gateway/session/redis_sentinel.py): where the master is and
how many replicas a write must reach. The dictionaries are shaped as redis-py parses
SENTINEL MASTER and SENTINEL REPLICAS; the real exchange is tested in
tests/integration/test_redis_failover.py."""

from __future__ import annotations

from typing import Any

from gateway.session.redis_sentinel import Survey, latest, read_survey


def master(port: int = 6379, epoch: int = 0, **flags: bool) -> dict[str, Any]:
    return {"ip": "10.0.0.1", "port": port, "config-epoch": epoch, "is_master": True, **flags}


def replica(link: str = "ok", priority: int = 100, **flags: bool) -> dict[str, Any]:
    return {"master-link-status": link, "slave-priority": priority, **flags}


def test_every_replica_sentinel_could_promote_counts() -> None:
    """Two healthy replicas: a write waits for both."""
    assert read_survey(master(), [replica(), replica()]) == Survey(("10.0.0.1", 6379), 0, 2)


def test_replicas_that_could_not_be_promoted_do_not_count() -> None:
    """Down, out of sync with their master (an old master not yet resynced) or of
    priority 0: waiting for them would only block writes."""
    replicas = [
        replica(),
        replica(is_sdown=True),
        replica(is_odown=True),
        replica(link="err"),
        replica(priority=0),
    ]
    survey = read_survey(master(), replicas)
    assert survey is not None and survey.replicas == 1


def test_a_replica_being_promoted_still_counts() -> None:
    """While Sentinel promotes it, the old master no longer reaches it: counting it is what
    makes the old master's writes fail instead of being acknowledged by the other replica."""
    survey = read_survey(master(), [replica(), replica(is_disconnected=True)])
    assert survey is not None and survey.replicas == 2


def test_a_master_that_is_down_is_no_answer() -> None:
    """Subjectively or objectively down, or not a master at all: no survey."""
    assert read_survey(master(is_sdown=True), [replica()]) is None
    assert read_survey(master(is_odown=True), [replica()]) is None
    assert read_survey({**master(), "is_master": False}, [replica()]) is None
    assert read_survey(True, []) is None


def test_the_highest_config_epoch_wins() -> None:
    """A Sentinel that has not heard of the failover (epoch 3) cannot send the store back
    to the demoted master."""
    old = Survey(("10.0.0.1", 6379), 3, 1)
    new = Survey(("10.0.0.2", 6379), 4, 1)
    assert latest([old, None, new, old]) == new


def test_among_equal_epochs_the_larger_replica_count_wins() -> None:
    """The safer answer: a write waits for more replicas, not fewer."""
    fewer = Survey(("10.0.0.1", 6379), 4, 1)
    more = Survey(("10.0.0.1", 6379), 4, 2)
    assert latest([fewer, more]) == more


def test_no_answer_at_all_is_none() -> None:
    assert latest([None, None]) is None
    assert latest([]) is None
