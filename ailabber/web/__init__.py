"""The dashboards: read-only web pages over what the CLI and ``ailabber admin`` read.

One small package serves both views: the student's (``ailabber web``, from their own
spool: ``student.py``) and the course staff's (``ailabber admin web``, from remoted's
records: ``remoted/admin/dashboard.py``, which builds on this package; nothing here
imports a daemon).  ``server.py`` is the HTTP side and every safety rule (127.0.0.1, the
per-start token, GET/HEAD only, the headers); ``html.py`` escapes by default; ``charts.py``
draws inline SVG.  The pages are rendered on the server from the files at each request
and refresh themselves with the few lines of ``static/dashboard.js``: no framework, no
CDN, nothing fetched from anywhere but the dashboard itself.
"""
