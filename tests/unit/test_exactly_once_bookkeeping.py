"""Bookkeeping behind exactly-once: offsets processed in log order, and reads as of the last commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.types import TP as FaustTP

from streams.eos import transactional_id
from streams.offsets import Admission, OffsetLedger
from streams.processing import Watchers
from streams.settings import Settings
from streams.worker import create_faust_app

TP = ("inventory.commands", 3)


@pytest.fixture
def ledger() -> OffsetLedger:
    ledger = OffsetLedger()
    ledger.start(TP, 10)
    return ledger


def test_the_next_record_is_admitted_and_moves_the_position(ledger: OffsetLedger) -> None:
    assert ledger.admit(TP, 10) is Admission.NEXT
    ledger.processed(TP, 10)
    assert ledger.position(TP) == 11


def test_a_record_below_the_position_was_seen(ledger: OffsetLedger) -> None:
    ledger.processed(TP, 10)
    assert ledger.admit(TP, 10) is Admission.SEEN
    assert ledger.admit(TP, 3) is Admission.SEEN


def test_a_record_after_an_unfetched_hole_is_out_of_order(ledger: OffsetLedger) -> None:
    # 10 and 11 were fetched and dropped before they reached the agent; 12 arrives.
    ledger.fetched(TP, 10, [10, 11, 12], next_position=13)
    assert ledger.admit(TP, 12) is Admission.OUT_OF_ORDER
    assert ledger.position(TP) == 10


def test_markers_the_fetcher_crossed_do_not_hold_the_position(ledger: OffsetLedger) -> None:
    # 11 is a commit marker: the fetcher went from 10 straight to 12.
    ledger.fetched(TP, 10, [10, 12], next_position=13)
    ledger.processed(TP, 10)
    assert ledger.admit(TP, 12) is Admission.NEXT


def test_markers_at_the_fetch_position_do_not_hold_the_position(ledger: OffsetLedger) -> None:
    ledger.fetched(TP, 10, [13], next_position=14)
    assert ledger.admit(TP, 13) is Admission.NEXT


def test_markers_the_previous_fetch_crossed_do_not_hold_the_position(ledger: OffsetLedger) -> None:
    # The first fetch returned 10 and crossed the marker 11; the next one starts at 12.
    ledger.fetched(TP, 10, [10], next_position=12)
    ledger.fetched(TP, 12, [12], next_position=13)
    ledger.processed(TP, 10)
    assert ledger.admit(TP, 12) is Admission.NEXT


def test_a_fetch_elsewhere_does_not_continue_the_previous_fetchs_run(ledger: OffsetLedger) -> None:
    # The first fetch crossed the marker 11 to 12; a later fetch from 14 (after a seek) returns 15.
    ledger.fetched(TP, 10, [10], next_position=12)
    ledger.fetched(TP, 14, [15], next_position=16)
    ledger.processed(TP, 10)
    assert ledger.admit(TP, 15) is Admission.OUT_OF_ORDER


def test_a_crossed_run_counts_only_when_it_starts_at_or_below_the_position(ledger: OffsetLedger) -> None:
    # Fetched 10, 11, then crossed the marker 12 to 13; 10 and 11 never reached the agent.
    ledger.fetched(TP, 10, [10, 11, 13], next_position=14)
    assert ledger.admit(TP, 13) is Admission.OUT_OF_ORDER
    ledger.processed(TP, 10)
    ledger.processed(TP, 11)
    assert ledger.admit(TP, 13) is Admission.NEXT


def test_an_unknown_partition_admits_nothing() -> None:
    assert OffsetLedger().admit(TP, 0) is Admission.OUT_OF_ORDER


def test_forgetting_a_partition_drops_its_position(ledger: OffsetLedger) -> None:
    ledger.forget([TP])
    assert ledger.position(TP) is None
    assert ledger.admit(TP, 10) is Admission.OUT_OF_ORDER


def test_caught_up_counts_the_markers_after_the_last_record(ledger: OffsetLedger) -> None:
    ledger.fetched(TP, 10, [10], next_position=12)  # 11 is the marker ending the transaction
    assert not ledger.caught_up(TP, 12)
    ledger.processed(TP, 10)
    assert ledger.caught_up(TP, 12)
    assert not ledger.caught_up(TP, 13)


def test_caught_up_is_false_while_a_fetched_record_is_unprocessed(ledger: OffsetLedger) -> None:
    ledger.fetched(TP, 10, [10, 11], next_position=13)
    ledger.processed(TP, 10)
    assert not ledger.caught_up(TP, 13)


def test_pruning_keeps_the_runs_above_the_position(ledger: OffsetLedger) -> None:
    offsets = list(range(10, 3000, 2))  # a marker after every record
    ledger.fetched(TP, 10, offsets, next_position=3000)
    for offset in offsets[:-1]:
        assert ledger.admit(TP, offset) is Admission.NEXT
        ledger.processed(TP, offset)
    assert ledger.admit(TP, offsets[-1]) is Admission.NEXT


class Partition:
    """The committed offset of one partition, as a test moves it."""

    def __init__(self) -> None:
        self.committed: int | None = None
        self.assigned = True


@pytest.fixture
def partition() -> Partition:
    return Partition()


@pytest.fixture
def watchers(partition: Partition) -> Watchers:
    return Watchers(committed_offset=lambda tp: partition.committed, assigned=lambda tp: partition.assigned)


def test_a_key_without_writes_reads_from_the_table(watchers: Watchers) -> None:
    assert watchers.committed_view("orders", b"o-1") == (False, None)


def test_an_uncommitted_write_reads_as_the_value_before_it(watchers: Watchers, partition: Partition) -> None:
    watchers.notify("orders", b"o-1", (TP, 5), previous="reserved")
    assert watchers.committed_view("orders", b"o-1") == (True, "reserved")
    partition.committed = 6
    assert watchers.committed_view("orders", b"o-1") == (False, None)


def test_later_uncommitted_writes_keep_the_last_committed_value(watchers: Watchers, partition: Partition) -> None:
    watchers.notify("orders", b"o-1", (TP, 5), previous="pending")
    watchers.notify("orders", b"o-1", (TP, 9), previous="reserved")
    partition.committed = 6  # the first write is committed, the second is not
    assert watchers.committed_view("orders", b"o-1") == (True, "pending")
    # the entry is renewed only once the earlier writes are all committed
    partition.committed = 10
    assert watchers.committed_view("orders", b"o-1") == (False, None)


def test_a_write_after_a_commit_remembers_the_committed_value(watchers: Watchers, partition: Partition) -> None:
    watchers.notify("orders", b"o-1", (TP, 5), previous=None)
    partition.committed = 6
    watchers.notify("orders", b"o-1", (TP, 7), previous="reserved")
    assert watchers.committed_view("orders", b"o-1") == (True, "reserved")


def test_a_revoked_partition_reads_from_the_table(watchers: Watchers, partition: Partition) -> None:
    watchers.notify("orders", b"o-1", (TP, 5), previous=None)
    partition.assigned = False
    assert watchers.committed_view("orders", b"o-1") == (False, None)


def test_co_partitioned_topics_and_their_changelogs_share_a_partitions_transaction() -> None:
    names = {transactional_id("shop", FaustTP(topic, 3))
             for topic in ("inventory.commands", "orders.events", "shop-inventory-changelog")}
    assert names == {"shop-p3"}
    assert transactional_id("shop", FaustTP("inventory.commands", 4)) != "shop-p3"


def test_the_leader_topic_never_shares_a_transaction_with_partition_0() -> None:
    # Faust assigns its leader topic to any worker: a shared name would have two workers fence each other.
    leader = transactional_id("shop", FaustTP("shop-__assignor-__leader", 0))
    assert leader not in {transactional_id("shop", FaustTP("inventory.commands", p)) for p in range(8)}


def test_producers_retry_after_the_configured_backoff(tmp_path: Path) -> None:
    app = create_faust_app(Settings(worker_data_dir=tmp_path, producer_retry_backoff_seconds=0.01))
    assert app.producer._settings_extra()["retry_backoff_ms"] == 10
