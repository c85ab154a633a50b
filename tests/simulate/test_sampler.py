"""Resource sampling: CPU seconds and memory of process trees, including children that
start between samples."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from app.simulate.sampler import CpuMeter, Sampler, tree
from tests.simulate.norecords import NoRecords
from tests.waiting import wait_for

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"
PARENT = (  # a parent that waits while its child spins, as a worker and its pool do
    "import subprocess, sys\n"
    f"subprocess.run([sys.executable, '-c', {SPIN!r}])\n"
)


@pytest.fixture
def spinning_tree() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", PARENT])
    wait_for(lambda: len(tree(proc.pid)) == 2, timeout=10, what="the spinning child")
    yield proc
    for p in reversed(tree(proc.pid)):
        p.kill()
    proc.wait()


def test_a_busy_child_is_measured_through_its_parent(
        spinning_tree: subprocess.Popen[bytes]) -> None:
    meter = CpuMeter()
    meter.measure(tree(spinning_tree.pid))  # baseline
    begin = time.monotonic()
    # Wait until the tree has used half a CPU second (the child spins on one core).
    used = 0.0

    def enough() -> bool:
        nonlocal used
        cpu, rss = meter.measure(tree(spinning_tree.pid))
        used += cpu
        assert rss > 1.0
        return used >= 0.5

    wait_for(enough, timeout=20, what="half a CPU second", poll=0.2)
    assert used <= (time.monotonic() - begin) * (psutil.cpu_count() or 1) + 0.1


def test_a_meter_read_late_reports_its_share_over_its_own_interval(
        spinning_tree: subprocess.Popen[bytes]) -> None:
    meter = CpuMeter()
    meter.measure(tree(spinning_tree.pid))
    time.sleep(0.6)  # the interval to measure (a sampler running late), not a wait
    cpu, _ = meter.measure(tree(spinning_tree.pid))
    assert meter.interval_s >= 0.6
    # one spinning child is at most one core over the meter's interval, however late
    # the sampler that asked came round
    assert 0.0 < meter.share(cpu, 1) <= 1.05
    assert meter.share(cpu, 2) == meter.share(cpu, 1) / 2


def test_an_idle_process_uses_next_to_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_SLEEPING,
                 timeout=10, what="the sleeper to sleep")
        meter = CpuMeter()
        meter.measure(tree(proc.pid))
        time.sleep(0.3)  # an interval to measure, not a wait for a condition
        cpu, _ = meter.measure(tree(proc.pid))
        assert cpu < 0.05
    finally:
        proc.kill()
        proc.wait()


def test_a_process_started_after_the_last_sample_counts_in_full() -> None:
    meter = CpuMeter()
    meter.measure([])
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        wait_for(lambda: psutil.Process(proc.pid).cpu_times().user > 0.3, timeout=20,
                 what="the new process to use CPU")
        cpu, _ = meter.measure(tree(proc.pid))
        assert cpu >= 0.3
    finally:
        proc.kill()
        proc.wait()


def test_a_vanished_process_is_skipped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    procs = tree(proc.pid)
    proc.wait()
    assert CpuMeter().measure(procs) == (0.0, 0.0)


def test_a_busy_game_server_process_counts_as_client_cpu_not_server_cpu(
        spinning_tree: subprocess.Popen[bytes]) -> None:
    sampler = Sampler(dict, dict, NoRecords(),  # type: ignore[arg-type]
                      client_pids=lambda: [spinning_tree.pid])
    sampler.cores, sampler.started = 1, 0.0
    sampler._measure()  # the baseline
    time.sleep(0.5)
    sample = sampler._measure()
    assert sample is not None
    assert sample.client_cpu > 0.5  # the spinning child, for most of the half second
    assert sample.server_cpu == sample.fleet_cpu == 0.0
