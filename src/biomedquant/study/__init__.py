"""The study as a whole: its config read strictly, the checks of every job before any runs."""
