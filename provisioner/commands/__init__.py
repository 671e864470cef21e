"""Library functions behind the CLI commands, and the Typer command functions themselves."""
