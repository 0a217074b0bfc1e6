"""The `infotok` command line.

Commands live in their own modules and are imported only when invoked, so that
`infotok --help` does not pay for torch or Ray imports.
"""

from __future__ import annotations

import importlib
import logging

import click

# command name -> "module:attribute" of a click.Command
_COMMANDS: dict[str, str] = {
    "train": "jobs.train_cmd:train",
    "eval": "jobs.eval_cmd:eval_cmd",
    "calibrate": "jobs.calibrate_cmd:calibrate",
    "tune-beta": "jobs.tune_beta_cmd:tune_beta",
    "demo": "jobs.demo_cmd:demo",
    "tokenize": "jobs.tokenize_cmd:tokenize",
    "status": "jobs.tokenize_cmd:status",
    "submit": "jobs.submit_cmd:submit",
    "inspect": "jobs.dataset_cmds:inspect_cmd",
    "validate": "jobs.dataset_cmds:validate_cmd",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """infotok: adaptive discrete-token datasets from video corpora."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
