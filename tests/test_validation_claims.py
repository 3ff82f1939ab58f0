"""Claims on ground-truth trainings: one holder at a time, across threads and processes; a killed
holder's claim is free at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from blockzoo.validation.claims import Claim

ROOT = Path(__file__).resolve().parents[1]


def test_two_threads_of_one_process_never_hold_the_same_training(tmp_path):
    path = tmp_path / "unit.claim"
    held, refused = [], []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        claim = Claim.take(path)
        if claim is None:
            refused.append(1)
            return
        held.append(claim)
        time.sleep(0.2)  # everyone else tries while this one holds it

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 1 and len(refused) == 7
    held[0].release()
    assert not path.exists()
    again = Claim.take(path)
    assert again is not None and path.read_text().split()[0].isdigit()
    again.release()


def test_a_killed_holder_frees_its_claim_at_once(tmp_path):
    path = tmp_path / "unit.claim"
    code = ("import sys, time; from pathlib import Path; from blockzoo.validation.claims import Claim; "
            "c = Claim.take(Path(sys.argv[1])); print('held' if c else 'refused', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert Claim.take(path) is None  # a live process holds it
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()  # left behind by the killed holder, but no longer locked
    claim = Claim.take(path)
    assert claim is not None
    claim.release()
