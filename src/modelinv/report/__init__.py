"""Reports: image grids now; tables, plots and HTML pages build on them."""
