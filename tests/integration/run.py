#!/usr/bin/env python3
"""Runs shoal's integration tests: every test_* function of every test_*.py
module here, in file order. Prints "ok|FAIL|SKIP name" per test and a closing
"N passed, M failed, K skipped". Usage: run.py [NAME_FILTER]
Each test has a timeout (lib.timeout(seconds) decorator, else
SHOAL_TEST_TIMEOUT, default 180 s); SHOAL_TEST_BUDGET (default 2700 s) caps
the whole run."""

import importlib
import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib  # noqa: E402

DEFAULT_TIMEOUT = int(os.environ.get("SHOAL_TEST_TIMEOUT", "180"))
# Past this many seconds in all, the remaining tests fail without running,
# so a hanging daemon cannot stall CI for hours. A guard, not a target: the
# suite takes about 30 min on an idle two-core machine, and CI stops at 90.
BUDGET = int(os.environ.get("SHOAL_TEST_BUDGET", "2700"))


class TestTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise TestTimeout("test timed out")


def discover(flt):
    tests, broken = [], []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        try:
            mod = importlib.import_module(modname)
        except Exception:
            broken.append((modname, traceback.format_exc(limit=3)))
            continue
        fns = [v for k, v in vars(mod).items()
               if k.startswith("test_") and callable(v) and getattr(v, "__module__", None) == modname]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in fns:
            name = "%s.%s" % (modname, f.__name__)
            if flt and flt not in name:
                continue
            tests.append((name, f))
    return tests, broken


def brief(exc):
    """The assertion message plus the test-side frames of the traceback."""
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename.startswith(HERE) and not f.filename.endswith("run.py")]
    if not frames:  # raised outside the tests' files: show where anyway
        frames = [f for f in tb if not f.filename.endswith("run.py")]
    lines = ["%s:%d in %s: %s" % (os.path.basename(f.filename), f.lineno, f.name, (f.line or "").strip())
             for f in frames[-4:]]
    msg = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    if len(msg) > 4000:
        msg = msg[:4000] + " ..."
    return lines + msg.splitlines()


def main():
    flt = sys.argv[1] if len(sys.argv) > 1 else None
    tests, broken = discover(flt)
    signal.signal(signal.SIGALRM, on_alarm)
    passed = failed = skipped = 0
    recap = []  # repeated at the end: a long log dump must not hide a failure
    for modname, tb in broken:
        failed += 1
        print("FAIL %s (import)" % modname)
        for l in tb.splitlines():
            print("    " + l)
    t_all = time.monotonic()
    for name, f in tests:
        if time.monotonic() - t_all > BUDGET:
            failed += 1
            print("FAIL %s (not run: the %d s budget is spent)" % (name, BUDGET))
            continue
        limit = getattr(f, "timeout", DEFAULT_TIMEOUT)
        t0 = time.monotonic()
        result, detail = "ok", []
        sys.stdout.flush()
        signal.alarm(limit)
        try:
            f()
        except (lib.Skip, unittest.SkipTest) as e:
            result, detail = "SKIP", [str(e)]
        except KeyboardInterrupt:
            signal.alarm(0)
            print("FAIL %s (interrupted)" % name)
            failed += 1
            break
        except BaseException as e:  # noqa: B902 - a test may raise anything
            result, detail = "FAIL", brief(e)
            if isinstance(e, TestTimeout):
                detail.insert(0, "timed out after %d s" % limit)
        finally:
            signal.alarm(0)
        dt = time.monotonic() - t0
        if result == "ok":
            passed += 1
            print("ok   %s (%.1fs)" % (name, dt))
        elif result == "SKIP":
            skipped += 1
            print("SKIP %s (%s)" % (name, detail[0] if detail else ""))
        else:
            failed += 1
            print("FAIL %s (%.1fs)" % (name, dt))
            for l in detail:
                print("    " + l)
            recap.append((name, [l for l in detail if not l.lstrip().startswith("|")][:4]))
        sys.stdout.flush()
    print("integration: %.0f s" % (time.monotonic() - t_all))
    for name, lines in recap:
        print("failed: %s" % name)
        for l in lines:
            print("    " + l[:300])
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
