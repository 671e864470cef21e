"""``with_groups``: a group's options appear in its place, their values arrive in one
dataclass a group, and logging is set up once, before the command's body."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from provisioner import log
from provisioner.commands import options
from provisioner.commands.options import (
    ApiOptions,
    ApiOverrides,
    EncryptionOptions,
    LogOptions,
    OptionGroup,
    with_groups,
)


@dataclass(frozen=True, slots=True)
class Colour(OptionGroup):
    colour: Annotated[str, typer.Option("--colour", envvar="TOY_COLOUR", help="Which.")] = "red"
    shade: Annotated[int, typer.Option("--shade", "-s", min=0, help="How dark.")] = 0


@dataclass(frozen=True, slots=True)
class Size(OptionGroup):
    size: Annotated[str | None, typer.Option("--size", help="How big.")] = None
    wide: Annotated[bool, typer.Option("--wide", help="Wide.")] = False


SEEN: list[tuple[Any, ...]] = []


@with_groups()
def paint(
    *,
    target: Annotated[str, typer.Argument(metavar="TARGET", help="What to paint.")],
    colour: Colour,
    coats: Annotated[int, typer.Option("--coats", help="How many coats.")] = 1,
    size: Size,
) -> None:
    """Paint TARGET."""
    SEEN.append((target, colour, coats, size))


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("paint")(paint)

    @app.callback()
    def _root() -> None:
        """Root, so that ``paint`` is a named sub-command."""

    return app


def _paint(*args: str, env: dict[str, str] | None = None) -> tuple[Any, ...]:
    SEEN.clear()
    result = CliRunner().invoke(_app(), ["paint", *args], env=env)
    assert result.exit_code == 0, result.output
    assert len(SEEN) == 1
    return SEEN[0]


@pytest.fixture(autouse=True)
def logging_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(options, "setup_logging", lambda *a, **k: calls.append((a, k)))
    return calls


def test_options_of_the_groups_stand_in_their_place() -> None:
    params = get_command(_app()).commands["paint"].params  # type: ignore[attr-defined]
    assert [p.name for p in params] == ["target", "colour", "shade", "coats", "size", "wide"]
    result = CliRunner().invoke(_app(), ["paint", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("TARGET", "--colour", "--shade", "-s", "--coats", "--size", "--wide"):
        assert text in result.output
    for text in ("Which.", "How dark.", "How big.", "Paint TARGET."):
        assert text in result.output


def test_values_arrive_in_one_dataclass_a_group() -> None:
    seen = _paint("wall", "--colour", "blue", "-s", "3", "--size", "xl", "--wide", "--coats", "2")
    assert seen == ("wall", Colour("blue", 3), 2, Size("xl", wide=True))


def test_defaults() -> None:
    assert _paint("wall") == ("wall", Colour(), 1, Size())


def test_environment_variables_work() -> None:
    assert _paint("wall", env={"TOY_COLOUR": "green"})[1] == Colour("green", 0)
    assert _paint("wall", "--colour", "blue", env={"TOY_COLOUR": "green"})[1].colour == "blue"


def test_typer_checks_the_values() -> None:
    result = CliRunner().invoke(_app(), ["paint", "wall", "--shade", "-1"])
    assert result.exit_code == 2


def test_an_option_declared_twice_is_refused() -> None:
    def twice(*, colour: Colour, shade: int = 0) -> None: ...

    with pytest.raises(TypeError, match="shade"):
        with_groups()(twice)


def test_the_shared_groups_expand() -> None:
    @with_groups()
    def shared(*, api: ApiOptions, encryption: EncryptionOptions, logs: LogOptions) -> None: ...

    app = typer.Typer(add_completion=False)
    app.command()(shared)
    names = [p.name for p in get_command(app).params]
    assert names == [
        *ApiOptions.__dataclass_fields__,
        *EncryptionOptions.__dataclass_fields__,
        "log_format",
    ]


def test_logging_is_set_up_once_from_the_log_group(
    logging_calls: list[tuple[Any, dict[str, Any]]],
) -> None:
    order: list[str] = []

    @with_groups(progress_bars=True)
    def logged(*, logs: LogOptions) -> None:
        order.append(f"body {len(logging_calls)}")

    app = typer.Typer(add_completion=False)
    app.command()(logged)
    assert CliRunner().invoke(app, ["--log-format", "json"]).exit_code == 0
    assert CliRunner().invoke(app, []).exit_code == 0
    assert logging_calls == [
        (("json",), {"progress_bars": True}),
        ((None,), {"progress_bars": True}),
    ]
    assert order == ["body 1", "body 2"]  # set up before the body


def test_without_a_log_group_the_default_rule_applies(
    logging_calls: list[tuple[Any, dict[str, Any]]],
) -> None:
    _paint("wall")
    assert logging_calls == [((), {"unless_configured": True})]


def test_api_overrides_are_given_only_when_one_is() -> None:
    assert not ApiOverrides().given
    assert ApiOverrides(insecure_http=True).given
    assert ApiOverrides(timeout=5.0).overrides() == {
        "qps_scale": None,
        "timeout": 5.0,
        "deadline": None,
        "insecure_http": None,  # not given: the environment decides
    }


def test_encryption_recorded_keeps_no_secret(tmp_path: Any) -> None:
    recorded = EncryptionOptions(["age1x"], tmp_path / "r.txt", "PASS_VAR").recorded()
    assert recorded == {
        "recipients": ["age1x"],
        "recipients_file": str((tmp_path / "r.txt").absolute()),
        "passphrase_env": "PASS_VAR",
    }


# --- the rule itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tty", "fmt", "progress_bars", "expected"),
    [
        (True, None, True, ("console", logging.WARNING)),  # the bars tell the story
        (True, None, False, (None, logging.INFO)),
        (True, "json", True, ("json", logging.INFO)),
        (False, None, True, (None, logging.INFO)),
        (False, "console", False, ("console", logging.INFO)),
    ],
)
def test_setup_logging_rule(
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    fmt: log.LogFormat | None,
    progress_bars: bool,
    expected: tuple[str | None, int],
) -> None:
    calls: list[tuple[str | None, int]] = []
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    monkeypatch.setattr(
        log, "configure_logging", lambda f=None, *, level=logging.INFO: calls.append((f, level))
    )
    log.setup_logging(fmt, progress_bars=progress_bars)
    assert calls == [expected]


def test_setup_logging_leaves_a_configuration_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(log, "configure_logging", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(log.structlog, "is_configured", lambda: True)
    log.setup_logging(unless_configured=True)
    assert calls == []
    log.setup_logging()  # a chosen rule always applies
    assert calls == [(None,)]
