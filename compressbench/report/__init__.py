"""Reports over ``results.csv`` files: ``python -m compressbench.report DIR [--findings-dir PATH] [--html]``.

A leaf of the package: it reads result tables and run folders and imports nothing from compressbench but
``results``, ``config`` (safe folder names) and ``infra`` (atomic, locks, tdist). The data flow, one module each:
collect (read the tree) → labels (technique, credit, speedup baseline) → points (seed groups, intervals,
numbered branches) → figures / stage_figures (plots, with style) → summary / sections / cells (summary.md;
pareto_set: a sweep's Pareto set for its objective, from the job folders; best_trial: Optuna's answer; recovery
and repeats: their sections) → html (one page) → write (files and locks); tables prints the terminal table; cli
is the command. Its modules import each other by full name, never through this package (no import circles).
"""
from __future__ import annotations

from compressbench.config import safe_slug
from compressbench.report.cli import main
from compressbench.report.collect import collect
from compressbench.report.labels import enrich
from compressbench.report.points import number_points, stage_table
from compressbench.report.stats import pareto_mask, wilson
from compressbench.report.summary import budget_table, candidates
from compressbench.report.tables import markdown_table, print_table, terminal_table
from compressbench.report.write import build, write_findings, write_report

__all__ = ["build", "budget_table", "candidates", "collect", "enrich", "main", "markdown_table", "number_points",
           "pareto_mask", "print_table", "safe_slug", "stage_table", "terminal_table", "wilson",
           "write_findings", "write_report"]
