"""Tools for people, not for the nightly path: the sample-log generator behind `make demo`, synthetic training
tables for benchmarks, and the bodies of jobs/generate_logs.py and jobs/show.py."""
