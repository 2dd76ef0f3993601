"""What a task is, as values: its config, states and reasons, ids, the upload manifest, where
the remote spool is and how it is laid out. Pure: nothing here touches the disk or the network
(``manifest`` only reads the file a caller names)."""
