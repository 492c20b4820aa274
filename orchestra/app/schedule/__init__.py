"""Cron pipelines.

``cron`` (cronsim adapter and DST rules) → ``model`` (a schedule's frozen definition) →
``store`` (schedules.sqlite: definitions, watermarks, per-slot claims) → ``tick`` (one evaluation:
catch-up, overlap, claim, launch) → ``daemon`` (the loop, lock, signals). ``launch``/``child`` run
each slot's pipeline as its own ``orchestra.app.session.run`` process; ``notify`` sends the schedule
webhooks; ``manage`` is what the CLI calls. Importing this package imports nothing heavy.
"""
