"""One Validator used from several threads at once, as the reference server's thread pool uses it.

Found by tests/test_server_durability.py: a fresh `kroniker serve` (no compiled plan on disk yet) posted to by
four clients at once answered a valid Shared Note with 500, its log saying `RuntimeError: dictionary changed
size during iteration` from `ProfileSet.save()` (validators/profiles.py): one request pickles the shared
compiled plan while another compiles into it. The server saves plans after each submission's validation
(`Validator.save_plans()`), so each thread here validates and then saves, as a request does. About two cold
starts in five show it on loopback; a slow disk
(simulated here by a plan file that writes slowly) makes it certain.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kroniker.validators.packages import PackageCache

ROOT = Path(__file__).resolve().parents[1]

# Run in a process of its own: the compiled plans are per process, and this needs them cold.
SCRIPT = textwrap.dedent("""
    import json, pickle, sys, threading, time, types
    from pathlib import Path

    from kroniker.validators import profiles
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator
    from tests.builders import diagnosis_card
    from tests.server_process import distinct_note

    writing = threading.Event()

    class SlowDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, b):
            writing.set()
            time.sleep(0.002)
            return self.fh.write(b)

    profiles.pickle = types.SimpleNamespace(
        dump=lambda obj, fh, protocol=None: pickle.dump(obj, SlowDisk(fh), protocol=protocol),
        load=pickle.load, PickleError=pickle.PickleError, HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL)
    validator = Validator(PackageCache(Path(sys.argv[1])), plans=profiles.PlanStore(Path(sys.argv[2])))
    answers = []

    def validate(document, after=None):
        if after is not None:
            after.wait(30)
        try:
            report = validator.validate(document)
            validator.save_plans()
            answers.append(report.valid)
        except Exception as exc:
            answers.append(f"{type(exc).__name__}: {exc}")

    note = distinct_note("threads")
    card = json.dumps(diagnosis_card()).encode()
    threads = [threading.Thread(target=validate, args=(note,)),
               threading.Thread(target=validate, args=(card, writing))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    print(json.dumps(answers))
""")


def test_two_documents_validated_at_once_on_a_cold_plan_both_get_a_report(package_cache: PackageCache,
                                                                          tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(package_cache.root), str(tmp_path / "plans")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    if done.returncode != 0:  # not the failure this pins: let it show as an error, not as the expected failure
        raise RuntimeError(done.stderr[-2000:])
    assert done.stdout.strip().splitlines()[-1] == "[true, true]"
    assert list((tmp_path / "plans").glob("*.pickle")), "the plans were saved"
