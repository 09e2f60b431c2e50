"""Census of the bad-input corpus: run every case of tests/test_bad_input.py in-process against the
qep_analog found on sys.path and count, per command, the inputs refused correctly (exit 2, one stderr
line, no traceback, nothing changed under the case's temporary root; at most 20 s per case) and those
whose line also names the key or file the corpus expects.

    python tests/data/bad/census.py                                      # this checkout
    PYTHONPATH=/path/to/other/checkout python tests/data/bad/census.py   # another version, same corpus

Not a test (pytest does not collect it): it also runs versions that fail, and prints what they did.
A version without $QEP_ANALOG_DEVICES gets the bad device file planted in its devices/ for the
`devices` cases (and removed again). A version that writes outside its directories may leave files
behind (the version of 2026-12-01 01:57 wrote /tmp/qep_escaped.json).
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import io
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path


class Slow(Exception):
    pass


def _alarm(*_) -> None:
    raise Slow()


def _load_cases():
    path = Path(__file__).resolve().parents[2] / "test_bad_input.py"
    spec = importlib.util.spec_from_file_location("bad_input_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_input_cases"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    cases = _load_cases()
    import qep_analog
    import qep_analog.device.devices as device_module
    from qep_analog.cli import main as cli
    from qep_analog.device.bundle import export_protocol
    from qep_analog.device.bundle_lab import simulate_counts

    print("code under test:", qep_analog.__file__, flush=True)
    devices_dir = Path(qep_analog.__file__).parents[1] / "devices"
    needs_planting = not hasattr(device_module, "device_dirs")
    good = Path(tempfile.mkdtemp(prefix="census-good-"))
    export_protocol(cases.EXPORT_BASE, good / "b0", drawings=False)
    simulate_counts(good / "b0", good / "c0", seed=3)
    signal.signal(signal.SIGALRM, _alarm)
    total, correct, named = collections.Counter(), collections.Counter(), collections.Counter()
    failures = []
    for case in cases.CASES:
        tmp = Path(tempfile.mkdtemp(prefix="census-case-"))
        work = tmp / "root" / "work"
        work.mkdir(parents=True)
        cases._prepare(case, work, good)
        cwd, env = os.getcwd(), dict(os.environ)
        os.chdir(work)
        os.environ.pop("QEP_ANALOG_DEVICES", None)
        planted = None
        if case.entry.startswith("devices/"):
            os.environ["QEP_ANALOG_DEVICES"] = str(work / "devs")
            if case.command == "devices" and needs_planting and devices_dir.is_dir():
                planted = devices_dir / ("zz_" + Path(case.entry).name)
                shutil.copy(work / "devs" / Path(case.entry).name, planted)
        os.environ.update(case.env)
        before = cases._snapshot(tmp)
        err, out = io.StringIO(), io.StringIO()
        signal.alarm(20)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    code = cli(case.argv)
                except SystemExit as exc:
                    code = exc.code
        except Slow:
            code = "ran > 20 s"
        except BaseException as exc:  # noqa: BLE001 - the census records what escaped
            code = f"uncaught {type(exc).__name__}"
            err.write("Traceback (uncaught)\n")
        finally:
            signal.alarm(0)
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            if planted is not None:
                planted.unlink()
        text = err.getvalue()
        unchanged = cases._snapshot(tmp) == before
        ok = code == 2 and text.count("\n") == 1 and text.endswith("\n") and "Traceback" not in text and unchanged
        total[case.command] += 1
        correct[case.command] += ok
        named[case.command] += ok and (case.expect is None or case.expect in text)
        if not ok:
            last = text.strip().splitlines()[-1][:140] if text.strip() else ""
            failures.append(f"{case.command} {case.entry}: exit {code}, {text.count(chr(10))} stderr lines, "
                            f"files unchanged: {unchanged} :: {last}")
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(good, ignore_errors=True)
    for command in total:
        print(f"{command:10s} tried {total[command]:3d}  refused correctly {correct[command]:3d}  "
              f"and naming the key/file {named[command]:3d}")
    print(f"all        tried {sum(total.values()):3d}  refused correctly {sum(correct.values()):3d}  "
          f"and naming the key/file {sum(named.values()):3d}")
    print("\n".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
