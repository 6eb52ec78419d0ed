"""A/B experiments: assignment (:mod:`.assignment`, imported by serving images) and
statistics (:mod:`.stats`, for analysis; needs the ``stats`` extra). The two are kept
apart so that a serving image never imports scipy's or statsmodels' test machinery."""
