"""The study's figures, drawn from the tidy tables in ``results/tables/``.

* :mod:`~biomedquant.figures.style`: colour, order, titles and GPU sizes every figure shares.
* :mod:`~biomedquant.figures.draw`: panels, saving (PNG, PDF, SVG), legends, GPU lines.
* One module per family: :mod:`~biomedquant.figures.accuracy`,
  :mod:`~biomedquant.figures.comparisons`, :mod:`~biomedquant.figures.labels`,
  :mod:`~biomedquant.figures.prompting`, :mod:`~biomedquant.figures.memory`,
  :mod:`~biomedquant.figures.fit`, :mod:`~biomedquant.figures.cpu_deployment`,
  :mod:`~biomedquant.figures.recommendation`.
* :mod:`~biomedquant.figures.registry`: every figure as data (drawing function, tables read,
  caption, report category); ``biomedquant plot`` and the workflow's figure rules read it.

Scores are drawn on the metric's own 0-1 scale, changes from the baseline in points (x100),
the unit papers use ("4-bit lost 1.2 points of F1"). The tables are read with
:mod:`biomedquant.results`, the notebook's entry point too.
"""
