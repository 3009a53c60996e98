"""The CLI speaks one language (issue 20): every command's help ends with an example whose
options exist, `--write/--no-write` wherever findings are stored, `--url` always the cluster
(`kibana import` has `--kibana-url`), `--json` on every command and errors as JSON with it."""

from __future__ import annotations

import json
import shlex

import click
from click.testing import CliRunner

from logsight.cli import _commands, main


def _options(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}


def test_every_command_ends_its_help_with_a_runnable_example() -> None:
    for name, cmd in _commands(main):
        text = cmd.help or ""
        assert "Example: logsight " in text, name
        example = text.rsplit("Example: ", 1)[1].strip()
        args = shlex.split(example)[1:]
        assert " ".join(args[: len(name.split())]) == name, (name, example)
        used = {a.split("=")[0] for a in args if a.startswith("--")}
        assert used <= _options(cmd), (name, used - _options(cmd))
        # click parses it: the options take the values given
        cmd.make_context(name, args[len(name.split()):], resilient_parsing=True)


def test_every_undocumented_option_is_gone_and_every_printing_command_has_json() -> None:
    for name, cmd in _commands(main):
        bare = [p.opts[0] for p in cmd.params
                if isinstance(p, click.Option) and not p.help and not p.hidden]
        assert bare == [], (name, bare)
        if name not in ("serve",):
            assert "--json" in _options(cmd), name


def test_one_write_switch_and_one_url() -> None:
    for name, cmd in _commands(main):
        opts = _options(cmd)
        assert ("--no-write" in opts) == ("--write" in opts), name
    imp = dict(_commands(main))["kibana import"]
    assert "--kibana-url" in _options(imp)
    assert all(not p.hidden for p in imp.params if "--kibana-url" in getattr(p, "opts", []))


def test_errors_are_json_on_stdout_with_json_and_the_exit_code_is_kept() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["drift", "--reference", "/no/such.csv", "--current",
                               "/no/such2.csv", "--json"])
    assert res.exit_code == 2
    err = json.loads(res.stdout.splitlines()[0])["error"]
    assert err["exit_code"] == 2 and "file not found" in err["message"]
    res = runner.invoke(main, ["engine", "status", "--state-dir", "/nonexistent/x", "--json"])
    assert json.loads(res.stdout)["running"] is False and res.exit_code == 3
    # without --json the error stays text on stderr
    res = runner.invoke(main, ["drift", "--reference", "/no/such.csv", "--current", "/x.csv"])
    assert res.exit_code == 2 and not res.stdout.startswith("{")
