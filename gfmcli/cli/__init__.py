"""One module per ``gfm`` subcommand; each parses options and calls one library function."""
