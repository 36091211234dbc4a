"""The study: plan (grid, overlays, fused groups), schedule, run (jobs, launchers)."""
