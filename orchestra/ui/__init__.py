"""The web UI and the HTML report: read-only pages over the run store.

``server.py`` serves them (the standard library's threading HTTP server and a small router),
``routes.py`` maps URLs to :mod:`orchestra.app.browse`, ``assets.py`` reads the shipped
scripts and styles, ``report.py`` inlines everything into one HTML file, ``dagdraw.py`` draws
the DAG as SVG or PNG without a browser. Nothing here writes to a store.
"""
