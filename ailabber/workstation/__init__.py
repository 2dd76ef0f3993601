"""What the student's side does behind the CLI: snapshot a project and commit it to the local
spool (``submit``), the one-machine installation (``up``) and the demo."""
