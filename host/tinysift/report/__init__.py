"""Reports: the self-contained HTML page and the plots behind it."""
