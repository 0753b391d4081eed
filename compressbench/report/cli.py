"""``python -m compressbench.report DIR [--findings-dir PATH] [--html]``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from compressbench.report.write import write_findings, write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compressbench.report",
        description="Aggregate the runs under DIR into DIR/summary.csv, summary.md and plots/ (and, when asked, "
                    "curated copies per experiment under --findings-dir).")
    parser.add_argument("dir", type=Path, help="a run, sweep or tree of them (the folders Hydra wrote)")
    parser.add_argument("--findings-dir", type=Path, default=None,
                        help="also write <PATH>/<experiment>/ for each experiment found (nothing is written "
                             "there unless you pass this)")
    parser.add_argument("--html", action="store_true",
                        help="also write a self-contained index.html (into DIR, and into --findings-dir)")
    parser.add_argument("--no-findings", action="store_true", help=argparse.SUPPRESS)  # the old default's opt-out
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a directory; pass the run or sweep folder (outputs/... or multirun/...)")
    rows = write_report(args.dir, html_page=args.html)
    print(f"{len(rows)} rows from {rows['run_id'].nunique() if len(rows) else 0} runs → "
          f"{args.dir / 'summary.csv'}, {args.dir / 'summary.md'}, {args.dir / 'plots'}"
          + (f", {args.dir / 'index.html'}" if args.html else ""))
    if args.findings_dir is not None and not args.no_findings:
        for target in write_findings(args.dir, args.findings_dir, html_page=args.html):
            print(f"findings → {target}")
        if args.html:
            print(f"findings page → {args.findings_dir / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
