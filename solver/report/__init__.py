"""What the commands print: rich tables and the --json data."""
