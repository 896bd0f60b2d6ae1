"""Entry point: a lazy click group (``gnadvisor --help`` imports no torch) with one-line errors."""

from __future__ import annotations

import importlib
import sys
import traceback

import click

_COMMANDS = {
    "score": ("gnadvisor.cli.score", "score", "Exact GN spectrum of your own PyTorch model, layer by layer."),
    "suggest": ("gnadvisor.cli.suggest", "suggest", "Search architectures of a given depth for well-conditioned ones."),
    "prune": ("gnadvisor.cli.prune", "prune", "Compare pruning schemes and sparsities by their effect on kappa."),
    "validate": ("gnadvisor.cli.validate", "validate", "Train architectures and measure how well each score predicts training speed."),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs; turns errors into one line."""

    def list_commands(self, ctx):
        return list(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        mod, attr, _ = _COMMANDS[name]
        return getattr(importlib.import_module(mod), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # bad option values: one line, not click's usage block
            # the command path without its first word, which is the program name ('cli' under CliRunner)
            sub = exc.ctx.command_path.split()[1:] if exc.ctx is not None else []
            where = " ".join(["gnadvisor", *sub])
            click.echo(f"Error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            from .._checks import GNAdvisorError

            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            if isinstance(exc, GNAdvisorError):
                click.echo(f"Error: {exc}", err=True)
                sys.exit(2)
            text = str(exc).strip().splitlines()
            first = text[0] if text else ""
            click.echo(f"Error: internal error ({type(exc).__name__}: {first}); rerun with --debug for the "
                       "traceback and please report it", err=True)
            sys.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="gnadvisor")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gnadvisor: which network architectures will be easy to optimise?

    Measures the conditioning kappa = lambda_max / lambda_min!=0 of the Gauss-Newton matrix
    (Zhao, Singh & Lucchi, NeurIPS 2024). Depth always means the number of hidden layers.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


if __name__ == "__main__":  # pragma: no cover
    cli()
