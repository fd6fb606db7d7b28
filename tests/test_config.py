"""Settings: where the config file is, precedence (flag > env > profile > file > default),
profiles, private files, key files and stdin; and the CLI end to end against the
reference server."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from c2ws import config as config_module
from c2ws import spec
from c2ws.config import (
    Flags,
    InsecureFileError,
    KeySource,
    SettingsError,
    config_path,
    read_api_key,
    resolve,
)
from c2ws.exitcodes import ExitCode
from c2ws.testing import TestServer

REPO = Path(__file__).resolve().parent.parent
KEY = "config-secret-key-5678"
STRATEGY = 12345678

# The end-to-end tests' server (the ``server`` fixture of conftest.py).
pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(STRATEGY,), lifetime=120)


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def env_with_config(path: Path, **extra: str) -> dict[str, str]:
    return {"C2WS_CONFIG": str(path), **extra}


# --- where the file is ------------------------------------------------------------------


def test_config_path_follows_the_xdg_rules(home: Path) -> None:
    assert config_path({}, home=home) == home / ".config" / "c2ws" / "config.toml"
    assert config_path({"XDG_CONFIG_HOME": "/etc/xdg-user"}, home=home) == Path(
        "/etc/xdg-user/c2ws/config.toml")
    # A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    assert config_path({"XDG_CONFIG_HOME": "rel"}, home=home) == home / ".config/c2ws/config.toml"
    assert config_path({"C2WS_CONFIG": "/srv/c2ws.toml", "XDG_CONFIG_HOME": "/x"},
                       home=home) == Path("/srv/c2ws.toml")


def test_no_config_file_means_defaults(home: Path) -> None:
    settings = resolve(Flags(), {}, home=home)
    assert not settings.config_found
    assert settings.url.value == spec.DEFAULT_URL and settings.url.source == "default"
    assert settings.api_key.value is None
    assert settings.profile.value is None


# --- precedence --------------------------------------------------------------------------

CONFIG = """
profile = "paper"
url = "ws://top.example/ws"
output = "csv"

[profiles.paper]
url = "ws://paper.example/ws"
api_key = "paper-key"
strategies = [111, 222]
channels = ["signal"]
tz = "America/New_York"

[profiles.live]
api_key_file = "{key_file}"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    key_file = write_private(tmp_path / "live.key", "live-key\n")
    return write_private(tmp_path / "config.toml", CONFIG.format(key_file=key_file))


def test_flag_beats_env_beats_profile_beats_file_beats_default(config: Path) -> None:
    env = env_with_config(config)
    settings = resolve(Flags(), env)
    assert (settings.profile.value, settings.profile.source) == ("paper", "config file")
    assert (settings.url.value, settings.url.source) == ("ws://paper.example/ws",
                                                         "profile 'paper'")
    assert (settings.output.value, settings.output.source) == ("csv", "config file")
    assert settings.strategies.value == (111, 222)
    assert settings.channels.value == ("signal",)
    assert settings.tz.value == "America/New_York"
    assert settings.api_key.value == KeySource(value="paper-key")

    env["C2WS_URL"] = "ws://env.example/ws"
    env["C2_API_KEY"] = "env-key"
    settings = resolve(Flags(), env)
    assert (settings.url.value, settings.url.source) == ("ws://env.example/ws", "env C2WS_URL")
    assert settings.api_key.value == KeySource(value="env-key")
    assert settings.api_key.source == "env C2_API_KEY"

    settings = resolve(Flags(url="ws://flag.example/ws", api_key="flag-key",
                             strategies=(9,), output="json"), env)
    assert (settings.url.value, settings.url.source) == ("ws://flag.example/ws", "--url")
    assert settings.api_key.value == KeySource(value="flag-key")
    assert settings.strategies.value == (9,) and settings.strategies.source == "STRATEGY_ID"
    assert settings.output.value == "json" and settings.output.source == "--output"


def test_profile_chosen_by_flag_then_env_then_file(config: Path) -> None:
    env = env_with_config(config, C2WS_PROFILE="live")
    settings = resolve(Flags(), env)
    assert (settings.profile.value, settings.profile.source) == ("live", "env C2WS_PROFILE")
    # The live profile has no url: the file's top level gives it.
    assert settings.url.source == "config file"
    assert read_api_key(settings.api_key.value) == "live-key"  # type: ignore[arg-type]
    settings = resolve(Flags(profile="paper"), env)
    assert (settings.profile.value, settings.profile.source) == ("paper", "--profile")


def test_a_key_file_in_the_environment_beats_a_profile_key(config: Path, tmp_path: Path) -> None:
    key_file = write_private(tmp_path / "env.key", "  env-file-key \n\n")
    settings = resolve(Flags(), env_with_config(config, C2WS_API_KEY_FILE=str(key_file)))
    assert settings.api_key.source == "env C2WS_API_KEY_FILE"
    assert read_api_key(settings.api_key.value) == "env-file-key"  # type: ignore[arg-type]


def test_an_unknown_profile_names_the_ones_there_are(config: Path) -> None:
    with pytest.raises(SettingsError, match=r"no profile 'nope' \(from --profile\).*live, paper"):
        resolve(Flags(profile="nope"), env_with_config(config))


@pytest.mark.parametrize(("text", "message"), [
    ('urll = "x"', "unknown setting 'urll'"),
    ("strategies = [0]", "'strategies' must be a list of strategy ids"),
    ('strategies = "1"', "'strategies' must be a list"),
    ("[profiles.a]\napi_key = 'k'\napi_key_file = 'f'", "api_key or api_key_file, not both"),
    ("profiles = 3", "'profiles' must be a table"),
    ("url = ", "not valid TOML"),
    ("profile = 3", "'profile' must be a profile name"),
])
def test_config_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write_private(tmp_path / "config.toml", text)
    with pytest.raises(SettingsError, match=message):
        resolve(Flags(), env_with_config(path))


def test_both_key_flags_or_both_key_variables_are_refused(config: Path) -> None:
    with pytest.raises(SettingsError, match="not both"):
        resolve(Flags(api_key="a", api_key_file="b"), env_with_config(config))
    with pytest.raises(SettingsError, match="unset one"):
        resolve(Flags(), env_with_config(config, C2_API_KEY="a", C2WS_API_KEY_FILE="b"))


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        resolve(Flags(), env_with_config(tmp_path / "missing.toml"))


# --- config files that cannot be used ------------------------------------------------------


def test_a_config_location_that_cannot_be_looked_into_is_an_error_naming_it(
    tmp_path: Path, home: Path
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    too_long = tmp_path / ("a" * 300)
    for xdg in (loop, too_long):
        with pytest.raises(SettingsError) as caught:
            resolve(Flags(), {"XDG_CONFIG_HOME": str(xdg)}, home=home)
        message = str(caught.value)
        assert f"cannot read config file {xdg}/c2ws/config.toml: " in message
        assert "set C2WS_CONFIG=/dev/null to run without a config file" in message


def test_an_unreadable_config_directory_is_an_error_naming_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root reads any directory: the refusal another user meets is made at the open."""

    def denied(path: Path, **options: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(config_module, "open_for_reading", denied)
    with pytest.raises(SettingsError) as caught:
        resolve(Flags(), {}, home=home)
    assert str(caught.value) == (
        f"cannot read config file {home}/.config/c2ws/config.toml: Permission denied; "
        "set C2WS_CONFIG=/dev/null to run without a config file")


def test_a_file_where_the_config_directory_would_be_means_no_config_file(
    tmp_path: Path, home: Path
) -> None:
    not_a_directory = write_private(tmp_path / "file", "x")
    settings = resolve(Flags(), {"XDG_CONFIG_HOME": str(not_a_directory)}, home=home)
    assert not settings.config_found and settings.url.source == "default"


def test_a_config_location_that_cannot_be_read_is_a_usage_error_not_a_crash(
    tmp_path: Path,
) -> None:
    result = c2ws("subscribe", "1", env={"XDG_CONFIG_HOME": str(tmp_path / ("a" * 300)),
                                         "C2_API_KEY": KEY})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "cannot read config file" in result.stderr
    assert "C2WS_CONFIG=/dev/null" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["FIFO (named pipe)", "directory"])
def test_a_config_file_that_is_no_regular_file_is_refused_without_waiting(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "config.toml"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # nobody writes: reading it would wait for ever
    for env in (env_with_config(path), {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}):
        if "XDG_CONFIG_HOME" in env:  # the same at the default location
            (tmp_path / "xdg" / "c2ws").mkdir(parents=True)
            path = path.rename(tmp_path / "xdg" / "c2ws" / "config.toml")
        result = c2ws("config", "show", env=env)
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert f"config file {path} is a {kind}, not a regular file" in result.stderr
        assert "Traceback" not in result.stderr


# --- private files -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o644, "other users read"), (0o640, "its group read"),
                                           (0o620, "its group change")])
def test_a_config_file_holding_an_api_key_is_refused_when_others_can_use_it(
    tmp_path: Path, mode: int, who: str
) -> None:
    # Even in a profile that is not in use: the file holds the key all the same.
    path = write_private(tmp_path / "config.toml",
                         f'url = "ws://x/ws"\n[profiles.unused]\napi_key = "{KEY}"\n', mode)
    with pytest.raises(InsecureFileError) as caught:
        resolve(Flags(), env_with_config(path))
    assert who in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)
    assert KEY not in str(caught.value)


NO_SECRET = """
url = "ws://paper.example/ws"
api_key_file = "~/.config/c2ws/paper.key"
strategies = [111]

[profiles.live]
api_key_file = "~/.config/c2ws/live.key"
"""


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444, 0o755], ids=lambda m: f"{m:04o}")
def test_a_config_file_without_a_secret_may_be_read_by_others(tmp_path: Path, mode: int) -> None:
    path = write_private(tmp_path / "config.toml", NO_SECRET, mode)
    settings = resolve(Flags(), env_with_config(path))
    assert settings.url.value == "ws://paper.example/ws" and settings.strategies.value == (111,)
    assert settings.config_refused is None


@pytest.mark.parametrize(("mode", "who"), [(0o620, "its group"), (0o602, "other users"),
                                           (0o666, "other users")], ids=["0620", "0602", "0666"])
def test_a_config_file_others_may_change_is_refused_even_without_a_secret(
    tmp_path: Path, mode: int, who: str
) -> None:
    # Whoever may change it may point url (or api_key_file) elsewhere: where the key goes.
    path = write_private(tmp_path / "config.toml", NO_SECRET, mode)
    with pytest.raises(InsecureFileError) as caught:
        resolve(Flags(), env_with_config(path))
    assert f"lets {who}" in str(caught.value)
    assert "where your API key is sent" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = write_private(tmp_path / "k", "secret-value", 0o604)
    with pytest.raises(InsecureFileError, match="chmod 600") as caught:
        read_api_key(KeySource(path=key_file))
    assert "secret-value" not in str(caught.value)


def test_key_files_and_stdin(tmp_path: Path) -> None:
    assert read_api_key(KeySource(path=write_private(tmp_path / "a", "abc\r\n"))) == "abc"
    with pytest.raises(SettingsError, match="empty"):
        read_api_key(KeySource(path=write_private(tmp_path / "b", "\n \n")))
    with pytest.raises(SettingsError, match="cannot read API key file"):
        read_api_key(KeySource(path=tmp_path / "missing"))
    assert read_api_key(KeySource(path=Path("-")), io.BytesIO(b"from-stdin\n")) == "from-stdin"
    with pytest.raises(SettingsError, match="more than"):
        read_api_key(KeySource(path=Path("-")),
                     io.BytesIO(b"x" * (spec.MAX_KEY_FILE_BYTES + 1)))


# --- the command line, end to end ----------------------------------------------------------


def c2ws(*args: str, env: dict[str, str], stdin: str | None = None,
         ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("C2_", "C2WS_", "XDG_CONFIG"))}
    return subprocess.run([sys.executable, "-m", "c2ws", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=60, input=stdin, env={**clean, **env})


def test_a_profile_supplies_url_key_file_and_strategies(
    server: TestServer, tmp_path: Path
) -> None:
    key_file = write_private(tmp_path / "c2.key", KEY + "\n")
    config = write_private(tmp_path / "config.toml", f"""
[profiles.default]
url = "{server.url}"
api_key_file = "{key_file}"
strategies = [{STRATEGY}]
channels = ["signal"]
output = "ndjson"
""")
    result = c2ws("subscribe", "--timeout", "1", "--include-control",
                  env=env_with_config(config))
    assert result.returncode == 0, result.stderr
    acks = [json.loads(line) for line in result.stdout.splitlines()
            if json.loads(line)["msg_type"] == "subscription.ack"]
    assert [(a["payload"]["strategy_id"], a["payload"]["channel"]) for a in acks] == [
        (STRATEGY, spec.CHANNEL_SIGNAL)]
    assert KEY not in result.stdout + result.stderr


def test_the_key_can_come_from_stdin(server: TestServer, tmp_path: Path) -> None:
    result = c2ws("subscribe", str(STRATEGY), "-c", "signal", "--api-key-file", "-", "-o",
                  "ndjson", "--timeout", "1", "--include-control",
                  env={"C2WS_URL": server.url, "XDG_CONFIG_HOME": str(tmp_path)},
                  stdin=KEY + "\n")
    assert result.returncode == 0, result.stderr
    assert '"subscription.ack"' in result.stdout
    wrong = c2ws("subscribe", str(STRATEGY), "--api-key-file", "-", "--timeout", "5",
                 env={"C2WS_URL": server.url, "XDG_CONFIG_HOME": str(tmp_path)},
                 stdin="not-the-key\n")
    assert wrong.returncode == ExitCode.AUTH_FAILED


def test_a_key_file_can_be_a_pipe_from_a_secrets_manager(
    server: TestServer, tmp_path: Path
) -> None:
    script = (f'"{sys.executable}" -m c2ws subscribe {STRATEGY} -o ndjson --timeout 1 '
              f'--include-control --api-key-file <(printf "%s\\n" "$SECRET")')
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("C2_", "C2WS_"))}
    result = subprocess.run(["bash", "-c", script], cwd=REPO, text=True, capture_output=True,
                            timeout=60, env={**clean, "SECRET": KEY, "C2WS_URL": server.url,
                                             "C2WS_CONFIG": os.devnull})
    assert result.returncode == 0, result.stderr
    assert '"subscription.ack"' in result.stdout


def test_dev_null_as_the_config_file_means_none() -> None:
    settings = resolve(Flags(), {"C2WS_CONFIG": os.devnull})
    assert not settings.config_found and settings.url.source == "default"


def test_an_insecure_config_file_stops_the_command_with_the_fix(tmp_path: Path) -> None:
    config = write_private(tmp_path / "config.toml", f'api_key = "{KEY}"', 0o644)
    result = c2ws("subscribe", "1", env=env_with_config(config))
    assert result.returncode == ExitCode.USAGE
    assert f"chmod 600 {config}" in result.stderr
    assert KEY not in result.stderr and "Traceback" not in result.stderr


def test_config_show_says_where_each_setting_came_from_and_masks_the_key(
    config: Path, tmp_path: Path
) -> None:
    result = c2ws("config", "show", env=env_with_config(config, C2WS_URL="ws://env/ws"))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["profile"] == "paper  (config file)"
    assert lines["url"] == "ws://env/ws  (env C2WS_URL)"
    assert lines["api_key"] == "****  (profile 'paper')"
    assert lines["strategies"] == "111, 222  (profile 'paper')"
    assert lines["output"] == "csv  (config file)"
    assert "paper-key" not in result.stdout
    shown = c2ws("config", "show", "--json", "--profile", "live", env=env_with_config(config))
    document = json.loads(shown.stdout)
    assert document["settings"]["api_key"]["value"] == f"read from {tmp_path / 'live.key'}"
    assert document["profiles"] == ["live", "paper"]


def test_config_show_shows_channel_names_as_it_shows_the_default(config: Path) -> None:
    chosen = c2ws("config", "show", env=env_with_config(config))  # paper: ["signal"]
    default = c2ws("config", "show", "--profile", "live", env=env_with_config(config))
    assert "channels     strategy.signal  (profile 'paper')" in chosen.stdout
    assert "channels     strategy.signal, strategy.positions  (default)" in default.stdout
    shown = c2ws("config", "show", "--json", env=env_with_config(config))
    assert json.loads(shown.stdout)["settings"]["channels"]["value"] == ["strategy.signal"]


def test_config_show_shows_a_refused_config_file_and_says_why(tmp_path: Path) -> None:
    config = write_private(tmp_path / "c2ws" / "config.toml",
                           f'url = "ws://paper.example/ws"\napi_key = "{KEY}"\n', 0o644)
    result = c2ws("config", "show", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == ExitCode.USAGE
    lines = {line[:12].strip(): line[13:] for line in result.stdout.splitlines()}
    assert lines["config file"] == f"{config} (refused: see below)"
    assert lines["url"] == "ws://paper.example/ws  (config file)"
    assert lines["api_key"] == "****  (config file)"
    assert result.stderr == (f"c2ws: refusing to use config file {config}: its mode 0644 lets "
                             f"other users read it; make it private with: chmod 600 {config}\n")
    assert KEY not in result.stdout + result.stderr
    shown = c2ws("config", "show", "--json", env={"XDG_CONFIG_HOME": str(tmp_path)})
    document = json.loads(shown.stdout)
    assert "mode 0644" in document["config_refused"]
    assert document["settings"]["url"]["value"] == "ws://paper.example/ws"
    # A run refuses it still.
    run = c2ws("subscribe", "1", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert run.returncode == ExitCode.USAGE and f"chmod 600 {config}" in run.stderr


def test_config_show_reports_an_insecure_key_file(tmp_path: Path) -> None:
    key_file = write_private(tmp_path / "k", KEY, 0o644)
    result = c2ws("config", "show", "--api-key-file", str(key_file),
                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == ExitCode.USAGE
    assert "chmod 600" in result.stderr and KEY not in result.stdout + result.stderr


def test_config_path_prints_where_the_file_is(tmp_path: Path) -> None:
    result = c2ws("config", "path", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.stdout == f"{tmp_path}/c2ws/config.toml\n"


# --- config init ---------------------------------------------------------------------------


def test_config_init_writes_a_commented_private_file_and_never_overwrites_it(
    tmp_path: Path,
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = c2ws("config", "init", env=env)
    path = tmp_path / "xdg" / "c2ws" / "config.toml"
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {path} (mode 0600)" in result.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_text() == config_module.config_template()
    # Commented out: the file changes nothing until it is edited.
    settings = resolve(Flags(), env)
    assert settings.config_file == path and settings.config_found
    assert dataclasses.replace(settings, config_file=Path(os.devnull), config_found=False) == (
        resolve(Flags(), {"C2WS_CONFIG": os.devnull}))

    path.write_text("# mine\n")
    again = c2ws("config", "init", env=env)
    assert again.returncode == ExitCode.USAGE
    assert again.stderr == (f"c2ws: config file {path} already exists: 'c2ws config init "
                            "--force' replaces it ('c2ws config show' shows what it holds)\n")
    assert path.read_text() == "# mine\n"

    path.chmod(0o644)
    forced = c2ws("config", "init", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert path.read_text() == config_module.config_template()
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_config_init_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    previous = os.umask(0)
    try:
        config_module.write_config_template(path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600


def test_config_init_never_writes_through_a_symbolic_link(tmp_path: Path) -> None:
    target = write_private(tmp_path / "elsewhere", "precious\n", 0o644)
    link = tmp_path / "config.toml"
    link.symlink_to(target)
    with pytest.raises(SettingsError, match="already exists"):
        config_module.write_config_template(link)
    config_module.write_config_template(link, replace=True)
    assert not link.is_symlink() and link.stat().st_mode & 0o777 == 0o600
    assert target.read_text() == "precious\n"


def test_config_init_names_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no config file to write"):
        config_module.write_config_template(Path(os.devnull))
    blocker = write_private(tmp_path / "file", "")
    with pytest.raises(SettingsError, match=f"cannot create {blocker}"):
        config_module.write_config_template(blocker / "c2ws" / "config.toml")


def test_every_example_of_the_template_is_a_valid_setting(tmp_path: Path) -> None:
    # Each commented-out line that looks like TOML, its "# " taken away.
    lines = [line[2:] for line in config_module.config_template().splitlines()
             if re.match(r"# (\w+ = |\[profiles\.)", line)]
    assert {line.split(" =")[0] for line in lines if " = " in line} == {
        "profile", "api_key_file", "url", "strategies", "channels", "output", "tz"}
    path = write_private(tmp_path / "config.toml", "\n".join(lines) + "\n")
    settings = resolve(Flags(), env_with_config(path))
    assert settings.profile.value == "paper" and settings.url.source == "profile 'paper'"
    assert settings.channels.value == ("signal", "positions")
