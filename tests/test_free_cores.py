"""The llama.cpp backends decode on the cores other processes leave free (app.core.scheduler.FreeCores)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.core import scheduler
from app.core.scheduler import FreeCores


def test_threads_follow_what_other_processes_use(monkeypatch):
    clock = [100.0]
    machine = [(0, 0)]
    own = [0]
    monkeypatch.setattr(scheduler.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(scheduler, "_machine_jiffies", lambda: machine[0])
    monkeypatch.setattr(scheduler, "_own_jiffies", lambda: own[0])
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 4)
    fc = FreeCores(4, interval=0.5)

    def after(seconds, machine_busy, ours, total):
        clock[0] += seconds
        b, t = machine[0]
        machine[0] = (b + machine_busy, t + total)
        own[0] += ours
        return fc.threads()

    # 4 cores, 400 ticks in the interval: we used 200 of the 210 busy ones -> others ~0.1 core
    assert after(1.0, 210, 200, 400) == 4
    # another process takes one core: 3 left
    assert after(1.0, 300, 200, 400) == 3
    # two busy beside us and more: never below one thread
    assert after(1.0, 400, 40, 400) == 1
    # not re-measured before the interval is over
    assert after(0.1, 0, 0, 40) == 1
    # the others stopped
    assert after(1.0, 100, 100, 400) == 4


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="measures /proc (Linux)")
def test_a_machine_full_of_busy_processes_leaves_one_thread():
    n = os.cpu_count() or 1
    fc = FreeCores(n, interval=0.3)
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        fc.threads()  # a fresh window with every core busy
        time.sleep(0.5)
        assert fc.threads() == 1
    finally:
        for p in spin:
            p.kill()
            p.wait()


@pytest.mark.integration
def test_the_thread_count_does_not_change_what_the_model_writes(smollm_path):
    """Threads follow the free cores during a run, so outputs must not depend on their number."""
    from backends.llama_cpp_backend import LlamaCppGenerator
    from backends.protocols import GenerationRequest, SamplerSettings

    reqs = [GenerationRequest(key=i, messages=({"role": "user", "content": f"Write about topic {i}."},), seed=1,
                              settings=SamplerSettings(temperature=0.8, max_tokens=24)) for i in range(6)]
    outs = {}
    for threads in (1, 2):
        gen = LlamaCppGenerator(smollm_path, n_ctx=512, n_threads=threads)
        try:
            outs[threads] = {r.key: (r.text, r.token_logprobs) for r in gen.generate(reqs)}
        finally:
            gen.close()
    assert outs[1] == outs[2]
