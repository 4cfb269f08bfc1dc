"""Headless subcommands of the `lesionviewer` command line."""
