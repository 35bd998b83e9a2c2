"""splitpriv command line: parse, call the library, format. No logic of its own.

    python cli.py zoo                         list the model zoo
    python cli.py profile vgg19               cost table of every split point
    python cli.py leakage --model resnet50    privacy leakage by decoder inversion
    python cli.py leakage-sets data/profiles/vgg16.json   its leakage sets; --activate KEY switches
    python cli.py defend --model lenet7 --defense quantize    defenses priced per split
    python cli.py evaluate --policy all       heuristic baselines on the CMDP environment
    python cli.py train --profiles data/profiles   HC-MAPPO-L and its ablations

Library code raises ``common.errors.UserInputError`` for bad input; it is printed here as one
line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import click

from common.errors import UserInputError


class _Main(click.Group):
    """Top-level group that turns user errors into one line and exit code 2.

    Click's own usage errors (unknown option, bad choice, missing option) get the same one-line form,
    naming the subcommand's ``--help`` instead of printing the usage block.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `python cli.py`: the help text
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
            click.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserInputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="splitpriv")
def main() -> None:
    """Cost and privacy leakage of split DNN inference, and the HC-MAPPO-L optimiser over them."""


def _register() -> None:
    from inversion.commands import leakage
    from inversion.defense.commands import defend
    from inversion.sets_commands import leakage_sets_command
    from optimizer.commands import evaluate
    from optimizer.sweep_commands import sweep, sweep_report
    from optimizer.train_commands import train
    from profiler.commands import profile, zoo

    for command in (zoo, profile, leakage, leakage_sets_command, defend, evaluate, train, sweep, sweep_report):
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
