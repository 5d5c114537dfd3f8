"""``python -m gfmcli.cli``: the ``gfm`` command (the same module path in every gfm version)."""

from gfmcli.cli.main import main

main()
