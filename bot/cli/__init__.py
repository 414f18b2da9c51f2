"""The `salespulse` command line: run, demo, migrate, check, seed, report, backfill (one parser, in main)."""
