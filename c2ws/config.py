"""Settings: the config file, its profiles, and which source each setting came from.

One place decides every setting of a run, in this order (first wins)::

    command-line flag  >  environment variable  >  profile  >  config file top level  >  default

The config file is TOML, at ``$XDG_CONFIG_HOME/c2ws/config.toml`` (``~/.config`` when
XDG_CONFIG_HOME is unset; ``%APPDATA%`` on Windows), or wherever ``C2WS_CONFIG`` says::

    profile = "paper"            # used when neither --profile nor C2WS_PROFILE names one
    output = "ndjson"            # settings at the top level apply to every profile

    [profiles.paper]
    url = "wss://api4-general.collective2.com/ws"
    api_key_file = "~/.config/c2ws/paper.key"
    strategies = [12345678]
    channels = ["signal"]
    tz = "America/New_York"

Secrets stay private: a key file, or a config file that holds an ``api_key``, that other
users may read or change is refused, with the ``chmod`` that fixes it; a config file
without one may be read by others, not changed (its ``url`` and ``api_key_file`` decide
where the key goes).  Nothing here ever returns the key inside a message.  Everything is
passed in (environment, stdin), so the rules are testable without touching the real
home directory.  ``c2ws config init`` writes :func:`config_template`.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Generic, TypeVar
from urllib.parse import urlsplit

from c2ws import spec
from c2ws.errors import ConfigError
from c2ws.localfiles import UnusableFile, open_for_reading
from c2ws.render.safe import REDACTED

if TYPE_CHECKING:
    from c2ws.events import ProxySetting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tests run on 3.11+
    import tomli as tomllib

T = TypeVar("T")

ENV_CONFIG: Final = "C2WS_CONFIG"
ENV_PROFILE: Final = "C2WS_PROFILE"
ENV_API_KEY: Final = "C2_API_KEY"
ENV_API_KEY_FILE: Final = "C2WS_API_KEY_FILE"
ENV_URL: Final = "C2WS_URL"

DEFAULT_PROFILE: Final = "default"
STDIN_PATH: Final = "-"

# Keys a profile (or the file's top level) may set, and the type each must have.
_SETTING_TYPES: Final[dict[str, str]] = {
    "url": "a string",
    "api_key": "a string",
    "api_key_file": "a string (a path)",
    "strategies": "a list of strategy ids",
    "channels": "a list of channel names",
    "output": "a string",
    "tz": "a string",
}
_TOP_LEVEL_ONLY: Final = ("profile", "profiles")


class SettingsError(ConfigError):
    """A config file, profile or key file c2ws cannot use; ``str()`` says how to fix it."""


class InsecureFileError(SettingsError):
    """A config or key file other users may read or change."""


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A setting's value and where it came from (``"--url"``, ``"env C2WS_URL"``,
    ``"profile 'paper'"``, ``"config file"``, ``"default"``)."""

    value: T
    source: str


@dataclass(frozen=True)
class KeySource:
    """Where the API key is to be read from: given as a value, a file, or stdin."""

    value: str | None = None
    path: Path | None = None  # Path("-"): stdin

    @property
    def from_stdin(self) -> bool:
        return self.path is not None and str(self.path) == STDIN_PATH

    def describe(self) -> str:
        """For ``config show``: never the key itself."""
        if self.value is not None:
            return REDACTED
        if self.from_stdin:
            return "read from stdin"
        return f"read from {self.path}"


@dataclass(frozen=True)
class Flags:
    """What the command line said (None / empty: not given)."""

    profile: str | None = None
    url: str | None = None
    api_key: str | None = None
    api_key_file: str | None = None
    strategies: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    output: str | None = None
    tz: str | None = None


@dataclass(frozen=True)
class Settings:
    """The effective settings of a run, each with its source."""

    config_file: Path
    config_found: bool
    profile: Sourced[str | None]
    url: Sourced[str]
    api_key: Sourced[KeySource | None]
    strategies: Sourced[tuple[int, ...]]
    channels: Sourced[tuple[str, ...]]
    output: Sourced[str | None]
    tz: Sourced[str | None]
    profiles: tuple[str, ...] = field(default=())
    # Why a run would refuse the config file these settings were read from anyway
    # (``resolve(..., refused_config_too=True)``, for ``config show``); None: it would not.
    config_refused: str | None = None


# --- where the file is -----------------------------------------------------------------


def config_path(env: Mapping[str, str], *, home: Path | None = None) -> Path:
    """``C2WS_CONFIG``, else the platform's user config directory + ``c2ws/config.toml``.

    The XDG rules (an XDG_CONFIG_HOME that is not absolute is ignored) on every system
    but Windows, macOS included: a command-line tool's settings belong beside the other
    dotfiles people keep in ~/.config, as gh's and many others' do."""
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    home = home or Path.home()
    if os.name == "nt":  # pragma: no cover - not tested on Windows
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    else:
        xdg = env.get("XDG_CONFIG_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
    return base / "c2ws" / "config.toml"


# --- private files -----------------------------------------------------------------------


def _check_private(path: Path, st: os.stat_result, what: str, *, secret: bool = True) -> None:
    """Refuse a file whose mode lets other users read or change it; ``secret=False`` (a
    file that holds no secret): only one they may change."""
    if os.name == "nt":  # pragma: no cover - POSIX modes mean nothing there
        return
    loose = stat.S_IMODE(st.st_mode) & (0o077 if secret else 0o022)
    if not loose:
        return
    who = "other users" if loose & 0o007 else "its group"
    how = "read" if loose & 0o044 else "change"
    # A file without the key still decides where the key goes (url, api_key_file).
    why = "" if secret else " (and so where your API key is sent)"
    raise InsecureFileError(
        f"refusing to use {what} {path}: its mode {stat.S_IMODE(st.st_mode):04o} lets {who} "
        f"{how} it{why}; make it private with: chmod 600 {shlex.quote(str(path))}"
    )


class MissingFile(SettingsError):
    """Nothing at the path (or a file where a directory was expected on the way)."""


def read_private_file(path: Path, what: str, limit: int, *, pipes: bool = False) -> bytes:
    """The bytes of a regular file only its owner may read (``pipes``: or of a pipe, which
    is read as it comes); the mode is checked on the open file (fstat), so it is the file
    that is read that was checked.  A FIFO where a file is expected is refused without
    waiting for a writer.  Symbolic links are followed: dotfiles are often links."""
    data, status = _read_file(path, what, limit, pipes=pipes)
    _check_private(path, status, what)
    return data


def _read_file(path: Path, what: str, limit: int, *, pipes: bool = False,
               ) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file (``pipes``: or a pipe) and its status, taken from the
    descriptor that was read: the caller checks the mode of the very file it read."""
    try:
        fd = open_for_reading(path, pipes=pipes, max_bytes=limit)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise MissingFile(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnusableFile as exc:
        raise SettingsError(f"{what} {path} {exc.problem}") from None
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        status = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SettingsError(f"{what} {path} is larger than {limit} bytes")
    return data, status


def _key_text(data: bytes, where: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"the API key {where} is not UTF-8 text") from None
    key = text.strip()
    if not key:
        raise SettingsError(f"the API key {where} is empty")
    return key


def read_api_key(source: KeySource, stdin: IO[bytes] | None = None) -> str:
    """The key itself (surrounding whitespace and the final newline removed).  Whether it
    can travel in a header is :func:`check_api_key`'s business."""
    if source.value is not None:
        return source.value
    assert source.path is not None
    if source.from_stdin:
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(spec.MAX_KEY_FILE_BYTES + 1)
        if len(data) > spec.MAX_KEY_FILE_BYTES:
            raise SettingsError(f"stdin holds more than {spec.MAX_KEY_FILE_BYTES} bytes: "
                                "not an API key")
        return _key_text(data, "read from stdin")
    # A pipe too: --api-key-file <(pass show c2) hands the key over through one.
    data = read_private_file(source.path, "API key file", spec.MAX_KEY_FILE_BYTES, pipes=True)
    return _key_text(data, f"in {source.path}")


# --- the config file ----------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    found: bool
    top: Mapping[str, object]
    default_profile: str | None
    profiles: Mapping[str, Mapping[str, object]]
    refused: str | None = None  # see Settings.config_refused


def load_config(path: Path, *, must_exist: bool = False, refused_too: bool = False,
                ) -> ConfigFile:
    """Parse and check the config file; an absent file is an empty one (unless
    ``must_exist``: C2WS_CONFIG named it).  ``C2WS_CONFIG=/dev/null`` reads none.

    A file that holds an ``api_key`` must be private (mode 600); one that does not may
    be read by others, not changed.  ``refused_too``: a file refused for its mode is read
    all the same, the reason in :attr:`ConfigFile.refused`."""
    if str(path) == os.devnull:
        return ConfigFile(path, False, {}, None, {})
    try:
        data, status = _read_file(path, "config file", spec.MAX_CONFIG_FILE_BYTES)
    except MissingFile:
        if must_exist:
            raise SettingsError(f"config file {path} (from {ENV_CONFIG}) does not exist") from None
        return ConfigFile(path, False, {}, None, {})
    except SettingsError as exc:
        if must_exist:
            raise
        # Not asked for, yet there and unusable (a directory on the way that cannot be
        # read, a FIFO): an error all the same, since running without the settings it may
        # hold (a paper-trading URL) could do what was not meant; the way out is named.
        raise SettingsError(f"{exc}; set {ENV_CONFIG}=/dev/null to run without a config "
                            "file") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    refused = None
    try:
        _check_private(path, status, "config file", secret=_holds_secret(document))
    except InsecureFileError as exc:
        if not refused_too:
            raise
        refused = str(exc)
    profiles_value = document.get("profiles", {})
    if not isinstance(profiles_value, dict):
        raise SettingsError(f"config file {path}: 'profiles' must be a table of profiles "
                            "([profiles.NAME])")
    top = {k: v for k, v in document.items() if k not in _TOP_LEVEL_ONLY}
    _check_settings(top, f"config file {path}")
    profiles: dict[str, Mapping[str, object]] = {}
    for name, table in profiles_value.items():
        where = f"config file {path}, profile '{name}'"
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: a profile is a table ([profiles.{name}])")
        _check_settings(table, where)
        profiles[name] = table
    default_profile = document.get("profile")
    if default_profile is not None and not isinstance(default_profile, str):
        raise SettingsError(f"config file {path}: 'profile' must be a profile name (a string)")
    return ConfigFile(path, True, top, default_profile, profiles, refused)


def _holds_secret(document: Mapping[str, object]) -> bool:
    """An ``api_key`` at the top level or in any profile (even one not in use)."""
    profiles = document.get("profiles")
    tables = [document, *(profiles.values() if isinstance(profiles, dict) else ())]
    return any(isinstance(table, dict) and "api_key" in table for table in tables)


def _check_settings(table: Mapping[str, object], where: str) -> None:
    for key, value in table.items():
        expected = _SETTING_TYPES.get(key)
        if expected is None:
            known = ", ".join(sorted(_SETTING_TYPES))
            raise SettingsError(f"{where}: unknown setting '{key}' (known: {known})")
        if key == "strategies":
            ok = isinstance(value, list) and all(
                isinstance(item, int) and not isinstance(item, bool) and item > 0
                for item in value
            )
        elif key == "channels":
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise SettingsError(f"{where}: '{key}' must be {expected}")
    if "api_key" in table and "api_key_file" in table:
        raise SettingsError(f"{where}: set api_key or api_key_file, not both")


# --- precedence ---------------------------------------------------------------------------


def _pick(
    flag: T | None, flag_name: str, env_value: T | None, env_name: str,
    layers: list[tuple[Mapping[str, object], str]], key: str, default: T,
) -> Sourced[T]:
    if flag is not None:
        return Sourced(flag, flag_name)
    if env_value is not None:
        return Sourced(env_value, f"env {env_name}")
    for table, source in layers:
        if key in table:
            value = table[key]
            if isinstance(value, list):
                value = tuple(value)
            return Sourced(value, source)  # type: ignore[arg-type]  # checked when loaded
    return Sourced(default, "default")


def _key_source(
    flags: Flags, env: Mapping[str, str], layers: list[tuple[Mapping[str, object], str]],
) -> Sourced[KeySource | None]:
    if flags.api_key is not None and flags.api_key_file is not None:
        raise SettingsError("give --api-key or --api-key-file, not both", param="--api-key")
    if flags.api_key is not None:
        return Sourced(KeySource(value=flags.api_key), "--api-key")
    if flags.api_key_file is not None:
        return Sourced(KeySource(path=_path(flags.api_key_file)), "--api-key-file")
    env_key, env_file = env.get(ENV_API_KEY), env.get(ENV_API_KEY_FILE)
    if env_key and env_file:
        raise SettingsError(f"both {ENV_API_KEY} and {ENV_API_KEY_FILE} are set: unset one",
                            param="--api-key")
    if env_key:
        return Sourced(KeySource(value=env_key), f"env {ENV_API_KEY}")
    if env_file:
        return Sourced(KeySource(path=_path(env_file)), f"env {ENV_API_KEY_FILE}")
    for table, source in layers:
        if isinstance(value := table.get("api_key"), str):
            return Sourced(KeySource(value=value), source)
        if isinstance(value := table.get("api_key_file"), str):
            if value == STDIN_PATH:
                raise SettingsError(f"{source}: api_key_file '-' (stdin) is for the command "
                                    "line only")
            return Sourced(KeySource(path=_path(value)), source)
    return Sourced(None, "default")


def _path(text: str) -> Path:
    return Path(text) if text == STDIN_PATH else Path(text).expanduser()


def resolve(flags: Flags, env: Mapping[str, str], *, home: Path | None = None,
            refused_config_too: bool = False) -> Settings:
    """Every setting with its source; raises :class:`SettingsError` for a config file,
    profile or combination of options c2ws cannot use.  The key is located, not read
    (:func:`read_api_key` reads it).  ``refused_config_too``: a config file refused for
    its mode is used all the same and the reason kept in
    :attr:`Settings.config_refused` (to show settings, never to run with them)."""
    path = config_path(env, home=home)
    config = load_config(path, must_exist=bool(env.get(ENV_CONFIG)),
                         refused_too=refused_config_too)
    env_profile = env.get(ENV_PROFILE) or None
    if flags.profile is not None:
        profile: Sourced[str | None] = Sourced(flags.profile, "--profile")
    elif env_profile is not None:
        profile = Sourced(env_profile, f"env {ENV_PROFILE}")
    elif config.default_profile is not None:
        profile = Sourced(config.default_profile, "config file")
    elif DEFAULT_PROFILE in config.profiles:
        profile = Sourced(DEFAULT_PROFILE, "default")
    else:
        profile = Sourced(None, "default")
    layers: list[tuple[Mapping[str, object], str]] = []
    if profile.value is not None:
        table = config.profiles.get(profile.value)
        if table is None:
            known = ", ".join(sorted(config.profiles)) or "none"
            where = f"{path}" if config.found else f"{path} (which does not exist)"
            raise SettingsError(f"no profile '{profile.value}' (from {profile.source}) in "
                                f"config file {where}; profiles: {known}", param="--profile")
        layers.append((table, f"profile '{profile.value}'"))
    layers.append((config.top, "config file"))
    env_url = env.get(ENV_URL) or None
    return Settings(
        config_file=path,
        config_found=config.found,
        profile=profile,
        url=_pick(flags.url, "--url", env_url, ENV_URL, layers, "url", spec.DEFAULT_URL),
        api_key=_key_source(flags, env, layers),
        strategies=_pick(flags.strategies or None, "STRATEGY_ID", None, "", layers,
                         "strategies", ()),
        channels=_pick(flags.channels or None, "--channel", None, "", layers, "channels", ()),
        output=_pick(flags.output, "--output", None, "", layers, "output", None),
        tz=_pick(flags.tz, "--tz", None, "", layers, "tz", None),
        profiles=tuple(sorted(config.profiles)),
        config_refused=config.refused,
    )


# --- a new config file ------------------------------------------------------------------------


def config_template() -> str:
    """What ``c2ws config init`` writes: every setting explained and commented out, so
    that the file changes nothing until it is edited (each example line is valid TOML
    once its ``#`` is removed: tests/test_config.py checks it)."""
    return f"""\
# c2ws settings (TOML), written by `c2ws config init`.  `c2ws config show` prints the
# settings in effect and where each comes from; the README's "Configuration" section
# has the details.  Each setting comes from the first of: the command line, the
# environment, the profile in use, the top level of this file, the built-in default.

# The profile used when neither --profile nor {ENV_PROFILE} names one (without it, the
# profile named "{DEFAULT_PROFILE}", if there is one).
# profile = "paper"

# Settings at the top level apply to every profile.
#
# The API key: a file that holds the key alone, readable by you only (chmod 600 FILE).
# (api_key = "..." in this file works too; this file must then stay mode 600.)
# api_key_file = "~/.config/c2ws/c2.key"
#
# The WebSocket endpoint (default: {spec.DEFAULT_URL}).
# url = "{spec.DEFAULT_URL}"
#
# The strategies to stream when the command line names none.
# strategies = [12345678, 23456789]
#
# The channels: signal, positions or both (default: both).
# channels = ["signal", "positions"]
#
# The output: auto (tables on a terminal, NDJSON otherwise), table, ndjson, json, csv
# or tsv.
# output = "auto"
#
# The time zone of the table's times: local, utc or an IANA name.
# tz = "America/New_York"

# A profile: chosen with --profile paper, {ENV_PROFILE}=paper or profile = "paper".
# [profiles.paper]
# url = "ws://127.0.0.1:8765/ws"
# api_key_file = "~/.config/c2ws/paper.key"
# strategies = [12345678]
"""


def write_config_template(path: Path, *, replace: bool = False) -> None:
    """Write :func:`config_template` to ``path`` with mode 0600, creating its directory
    (0700) when missing; an existing file is an error unless ``replace``, which swaps
    the new file in by a rename (a symbolic link there is replaced, never followed)."""
    if str(path) == os.devnull:
        raise SettingsError(f"{ENV_CONFIG} is {os.devnull}: there is no config file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SettingsError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    try:
        if replace:
            # A new name beside it, then a rename: whatever was at the path (a file,
            # a symbolic link) is replaced as a whole, and never written through.
            staging = path.with_name(f".{path.name}.{os.getpid()}.new")
            _write_new_private_file(staging, config_template().encode())
            try:
                os.replace(staging, path)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
        else:
            _write_new_private_file(path, config_template().encode())
    except FileExistsError:
        raise SettingsError(f"config file {path} already exists: 'c2ws config init --force' "
                            "replaces it ('c2ws config show' shows what it holds)") from None
    except OSError as exc:
        raise SettingsError(f"cannot write config file {path}: {exc.strerror or exc}") from None


_CREATE_NEW: Final = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                      | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))


def _write_new_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` (nothing may be there, not even a symbolic link) with mode 0600
    whatever the umask, holding ``data``, on disk; removed again if that fails."""
    fd = os.open(path, _CREATE_NEW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


# --- the connection of a run ---------------------------------------------------------------


def check_api_key(api_key: str) -> str:
    """The key, if it can travel in an HTTP header and be redacted wherever a server
    echoes it; else :class:`ConfigError` (the key itself is never in the message)."""
    if not api_key:
        raise ConfigError("no API key: pass --api-key or set C2_API_KEY", param="--api-key")
    if not (api_key.isascii() and api_key.isprintable() and " " not in api_key):
        raise ConfigError(
            "the API key contains spaces, control or non-ASCII characters "
            "(a stray newline from a file?)", param="--api-key",
        )
    if len(api_key) < spec.MIN_API_KEY_LENGTH:
        # Never echoed, nor its length: a key this short is a placeholder or a typo.
        raise ConfigError(
            f"the API key is too short to be a key (fewer than {spec.MIN_API_KEY_LENGTH} "
            "characters)", param="--api-key",
        )
    return api_key


def check_url(url: str) -> str:
    """``url``, if it is a ws:// or wss:// URL with a host and a valid port; else
    :class:`ConfigError`."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    else:
        if parts.scheme in ("ws", "wss") and parts.hostname and port_ok:
            return url
    raise ConfigError(
        f"{url!r} is not a ws:// or wss:// URL with a host" + ("" if port_ok else " and port"),
        param="--url",
    )


def proxy_setting(url: str) -> ProxySetting | None:
    """The proxy the environment (``https_proxy``, ``all_proxy``, ``no_proxy``...) names
    for ``url``, as the connections will use it or pass it over, for saying so once before
    they open; None when they go direct.  A setting that is not a proxy URL at all is left
    to the connections to report."""
    from c2ws.events import ProxySetting
    from c2ws.net.connection import ConnectFailed, proxy_for

    try:
        route = proxy_for(url)
    except ConnectFailed:
        return None
    if route is None:
        return None
    secure = urlsplit(url).scheme == "wss"
    return ProxySetting(route.variable, route.scheme, route.address, route.used,
                        key_in_clear=route.used and not secure)


def api_key_of(settings: Settings, stdin: IO[bytes] | None = None) -> str:
    """The API key ``settings`` point at, read and checked (it can travel in a header
    and be redacted): "" when none is set anywhere.  Raises :class:`ConfigError` (a
    :class:`SettingsError` for an unusable key file) naming where the key came from, never
    the key.  ``c2ws subscribe`` and :func:`c2ws.stream` both call it."""
    source = settings.api_key.value
    if source is None:
        return ""
    key = read_api_key(source, stdin)
    try:
        return check_api_key(key)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (key from {settings.api_key.source})",
                          param=exc.param) from None


def connection_of(flags: Flags, env: Mapping[str, str]) -> tuple[str, str]:
    """The URL and API key of a run, resolved as ``c2ws subscribe`` resolves them (flag >
    environment (``C2WS_URL``, ``C2_API_KEY``, ``C2WS_API_KEY_FILE``, ``C2WS_PROFILE``) >
    profile > config file > default); raises :class:`ConfigError` when no key is set or
    a setting cannot be used."""
    settings = resolve(flags, env)
    key = api_key_of(settings)
    if not key:
        raise ConfigError(f"no API key: pass api_key=, or set {ENV_API_KEY} (or an api_key "
                          "in a profile of the config file)", param="--api-key")
    return settings.url.value, key
