"""How tasks sit on disk: crash-safe writes (fsync, rename, fsync dir), directory handles that
never follow a symlink, the local spool and its status files, the log index, the user's home
and limits files. Every write the CLI and the daemons make goes through here."""
