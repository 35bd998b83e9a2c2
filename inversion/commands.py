"""TEMPORARY placeholder written by the lead; the owner replaces this file."""
import click
from profiler.errors import UserInputError


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def leakage(args):
    raise UserInputError("leakage is not built yet")
