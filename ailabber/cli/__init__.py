"""The ``ailabber`` command: one module per verb, each parsing its arguments and calling
the core.  Nothing here touches the network; everything is a file in the user's spool."""
