"""The study's report: the results table, statistics and effects, the paper's numbers, figures."""
