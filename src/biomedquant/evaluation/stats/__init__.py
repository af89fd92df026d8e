"""The statistics of evaluation: sufficient statistics, bootstrap, intervals, paired tests,
verdicts."""
