"""The probes' CPU of a process tree only grows: a reaped child's time is kept."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from reference_app.simulate.probes import _tree_cpu_seconds

#: A parent that runs a child burning about 0.3 s of CPU, reaps it, then waits.
PARENT = """
import subprocess, sys, time
subprocess.run([sys.executable, "-c",
    "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"])
print("reaped", flush=True)
time.sleep(30)
"""


def test_a_reaped_childs_cpu_stays_in_the_trees_total() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "reaped"
        process = psutil.Process(parent.pid)
        assert process.children() == []
        own = process.cpu_times()
        # The child is gone; its 0.3 s are counted through the parent's reaped children.
        assert _tree_cpu_seconds(process) >= own.user + own.system + 0.25
    finally:
        parent.kill()
        parent.wait()


def test_a_live_childs_cpu_is_counted() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.run([sys.executable, '-c',"
            " 'import time\\nend = time.process_time() + 0.3\\n"
            "while time.process_time() < end: pass\\ntime.sleep(30)'])",
        ]
    )
    try:
        process = psutil.Process(parent.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _tree_cpu_seconds(process) >= 0.25:
                break
            time.sleep(0.05)
        assert _tree_cpu_seconds(process) >= 0.25
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_counts_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    process = psutil.Process(gone.pid)
    gone.kill()
    gone.wait()
    assert _tree_cpu_seconds(process) == 0.0
