"""The report: its table pages and the study's figures."""
