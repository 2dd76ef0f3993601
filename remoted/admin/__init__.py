"""``ailabber admin``: the course staff's commands, run on the cluster side.

They read remoted's records (``state/``) and never change a task themselves: a change
(cancel, hold, limits, purge) is a request file that remoted carries out on its next pass,
as it does a student's cancel, so that remoted stays the only writer of its records.
Who asks is the request file's owner, as the kernel records it, checked again by remoted
(``access.py``); nothing a user writes into a file names anyone.

``cli.py`` holds the table of subcommands, one module each.  ``ailabber.cli.main`` names
``remoted.admin.cli`` in its table of verbs; nothing in the ``ailabber`` package imports it.
"""
