"""The `huashu` command. Each area registers its subcommands from its own module here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="huashu",
    help="话术 huashu — dialogue engine for Chinese AI outbound calls and WeCom chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands to `app` (each defines `register(app)`). One per area, so that
# teams working on different stages never edit the same file.
_COMMAND_MODULES = (
    "huashu.cli.core",  # validate, simulate, demo, actions serve
    "huashu.cli.tracks",  # test-stories, graph
    "huashu.cli.nlu",  # nlu train | classify | evaluate
    "huashu.cli.store",  # customers import, segments, campaign
    "huashu.cli.campaign",  # campaign start|pause|resume|stop|status|simulate, worker
    "huashu.cli.serve",  # serve, gateway-sim
    "huashu.cli.asr",  # transcribe
    "huashu.cli.wecom",  # report
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area has no commands yet
                continue
            raise
        module.register(app)


def main() -> None:
    _register_all()
    app()
