"""The stages the entry points in jobs/ run: read tables, call pipelines/, write, gate, report.

One module per entry point of the same name (jobs/silver.py runs jobs/stages/silver.py), so the nightly
job calls stages, never another job."""
