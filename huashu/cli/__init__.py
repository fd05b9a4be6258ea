"""The `huashu` command. Each area registers its subcommands from its own module here."""

from __future__ import annotations

import importlib
import re
from typing import Any

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
    "huashu.cli.persona",  # persona script | import
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


_TYPE_LABEL = re.compile(r"^<(?:list\[)?([^\]>|]*)\]?>$")
_LABELS = {"str": "TEXT", "int": "INT", "float": "NUMBER", "Path": "PATH", "datetime": "DATETIME"}


def _plain_type_labels() -> None:
    """Help shows TEXT / PATH / INT (nothing for a flag) instead of Typer's Python type names
    (`<bool>`, `<list[str]>`), which mean nothing to an ops person."""
    from typer import core

    original = core._TyperParameter.display_type
    if getattr(original, "huashu", False):
        return

    def display_type(self: Any, ctx: Any) -> str:
        if getattr(self, "is_flag", False):
            return ""
        label = original(self, ctx)
        m = _TYPE_LABEL.match(label)
        return _LABELS.get(m.group(1), m.group(1).upper()) if m else label.strip("<>")

    display_type.huashu = True  # type: ignore[attr-defined]
    core._TyperParameter.display_type = display_type  # type: ignore[method-assign]


def main() -> None:
    _register_all()
    _plain_type_labels()
    app(prog_name="huashu")
