"""What every figure shares: a PNG plus the CSV of the plotted data (the figures are the ``experiments/fig*.py``
entry points, one file each)."""
