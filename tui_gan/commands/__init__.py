"""The subcommands and the training command's flags: torch-free, so every command answers
at once (a command that needs torch imports it when it runs). cli.py's table names them."""
