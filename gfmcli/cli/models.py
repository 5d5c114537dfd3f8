"""``gfm models``: the shipped weights, one line each (read from the checkpoints themselves)."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per model on stdout.")
def models(json_lines: bool) -> None:
    """List the shipped weights: name, task, sensor, classes and size; the one commands use
    without --model is marked (default).

    Use a name with --model (gfm predict scene.tif -o map.tif --model NAME); `gfm info NAME`
    shows a model's whole contract.
    """
    from gfmcli.api.info import shipped_models
    from gfmcli.cli.report import echo_json
    from gfmcli.engine.options import DEFAULT_MODEL

    found = shipped_models()
    if not found:
        click.echo("gfm: no shipped weights are installed", err=True)
    for summary in found:
        if json_lines:
            record = summary.to_dict()
            record.pop("provenance")  # `gfm info NAME --json` has it; one line stays short
            echo_json({**record, "default": summary.name == DEFAULT_MODEL})
            continue
        c = summary.contract
        classes = ", ".join(k.name for k in c.classes) or "-"
        name = f"{summary.name} (default)" if summary.name == DEFAULT_MODEL else summary.name
        click.echo(
            f"{name}  {c.task}  {c.sensor} ({len(c.bands)} bands, {c.gsd:g} m)  "
            f"{len(c.classes)} classes: {classes}  {summary.file_bytes / 1e6:.1f} MB, "
            f"{summary.parameters / 1e6:.2f} M parameters"
        )
