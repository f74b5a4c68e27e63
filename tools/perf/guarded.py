"""What the scripts a lent GPU runs once share (gpu_profile.py, gpu_decode.py): its minutes are
scarce, so a failing measurement is recorded, not raised, the JSON is rewritten after every
measurement (an outer timeout's kill keeps what was done), and measurements past a time budget
are marked skipped rather than run."""

import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import torch


class Run:
    """The JSON being built, written out after every measurement."""

    def __init__(self, out: Path | None, budget_s: float, tag: str, start: float):
        self.out, self.budget_s, self.tag, self.start = out, budget_s, tag, start
        self.data: dict = {"errors": []}

    def save(self):
        self.data["elapsed_s"] = round(time.perf_counter() - self.start, 3)
        if self.out is None:
            return
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.out)

    def print_on_sigterm(self, table):
        """On SIGTERM (an outer `timeout`), save and print `table(data)` of what was measured."""

        def stopped(signum, _frame):
            self.data["errors"].append(f"stopped by signal {signum}")
            self.save()
            print(table(self.data), flush=True)
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, stopped)

    def guarded(self, where: str, slot: dict, key: str, fn, *args, **kw):
        """slot[key] = fn(...), or {"error": ...} without stopping; skipped past the budget. A
        dict result gains the seconds it took (`measure_s`)."""
        if time.perf_counter() - self.start > self.budget_s:
            slot[key] = {"skipped": f"over the time budget ({self.budget_s:.0f} s)"}
        else:
            try:
                t = time.perf_counter()
                slot[key] = fn(*args, **kw)
                if isinstance(slot[key], dict):
                    slot[key]["measure_s"] = round(time.perf_counter() - t, 3)
            except Exception as e:  # noqa: BLE001 (any failure must leave the rest running)
                msg = f"{type(e).__name__}: {e}".strip()[:2000]
                slot[key] = {"error": msg}
                self.data["errors"].append(f"{where}: {msg}")
                print(f"[{self.tag}] {where}: {msg}", file=sys.stderr)
                traceback.print_exc(limit=3, file=sys.stderr)
                if torch.cuda.is_available():
                    # An out-of-memory error leaves cached blocks the next measurement may need.
                    try:
                        torch.cuda.empty_cache()
                    except Exception:  # noqa: BLE001
                        pass
        self.save()
        return slot[key]


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def note(v) -> str:
    """An error or skip, shortened for a table."""
    v = v or {}
    return str(v.get("error") or v.get("skipped") or v)[:100]


def fmt(v, width=8, digits=1):
    """A number right-aligned in `width`, or a dash."""
    return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) and not math.isnan(v) else f"{'-':>{width}}"


def main_or_table(main, table):
    """main(), or with `--table JSON` only the table of a saved JSON (for gpu_table.py)."""
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()
