"""The `infotok` command line.

Commands live in their own modules and are imported only when invoked, so that
`infotok --help` does not pay for torch or Ray imports.

Errors are one line on stderr, `Error: ...`, naming the thing and the value: exit status 2 for a
usage error (a bad option), 1 for anything that failed while running. The traceback is printed
only with `-v`.
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
    "plan": "jobs.plan_cmd:plan_cmd",
    "status": "jobs.tokenize_cmd:status",
    "submit": "jobs.submit_cmd:submit",
    "inspect": "jobs.dataset_cmds:inspect_cmd",
    "validate": "jobs.dataset_cmds:validate_cmd",
    "lm-probe": "jobs.lm_probe_cmd:lm_probe",
    "decode": "jobs.decode_cmd:decode_cmd",
}


# what to do about failures whose own message does not say (by exception type, anywhere in the chain
# or named in a message that wraps it)
_HINTS: dict[str, str] = {
    "NoCredentialsError": "no AWS credentials were found: give --profile NAME, set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or --anon for a public bucket",
}


def _hint(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__name__ in _HINTS:
            return _HINTS[type(cur).__name__]
        cur = cur.__cause__ or cur.__context__
    return None


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line (what a failed command prints without -v), with what to do when
    the message alone does not say (`_HINTS`)."""
    text = " ".join(str(exc).split()) or "(no message)"
    line = text if isinstance(exc, click.ClickException) else f"{type(exc).__name__}: {text}"
    hint = _hint(exc) or next((h for name, h in _HINTS.items() if f"{name}:" in line), None)
    return f"{line} ({hint})" if hint and hint not in line else line


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use, and whose unexpected errors
    become one `Error:` line (exit 1) unless -v asks for the traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except click.ClickException as exc:  # a command's own one-line error: add what to do, if known
            exc.message = one_line(exc)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns a failure into an exit status
            if ctx.params.get("verbose"):
                raise
            raise click.ClickException(one_line(exc)) from exc

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
