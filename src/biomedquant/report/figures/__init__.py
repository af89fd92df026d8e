"""The study's figures, drawn from the tidy tables in ``results/tables/``.

* :mod:`~biomedquant.report.figures.style`: colour, order, titles and GPU sizes every figure shares.
* :mod:`~biomedquant.report.figures.draw`: panels, saving (PNG, PDF, SVG), legends, GPU lines.
* One module per family: :mod:`~biomedquant.report.figures.accuracy`,
  :mod:`~biomedquant.report.figures.comparisons`, :mod:`~biomedquant.report.figures.labels`,
  :mod:`~biomedquant.report.figures.prompting`, :mod:`~biomedquant.report.figures.memory`,
  :mod:`~biomedquant.report.figures.fit`, :mod:`~biomedquant.report.figures.cpu_deployment`,
  :mod:`~biomedquant.report.figures.recommendation`.
* :mod:`~biomedquant.report.figures.registry`: every figure as data (drawing function, tables read,
  caption, report category); ``biomedquant plot`` and the workflow's figure rules read it.

Scores are drawn on the metric's own 0-1 scale, changes from the baseline in points (x100),
the unit papers use ("4-bit lost 1.2 points of F1"). The tables are read with
:mod:`biomedquant.analysis.tables`, the notebook's entry point too.
"""
