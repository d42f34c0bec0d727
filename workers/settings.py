"""Settings from ``GOVFLOW_*`` environment variables, validated by pydantic.

Defaults point at the local stack (`govflow stack up`), found from any folder: ``GOVFLOW_HOME`` when
set, else the nearest ``.govflow/`` with a stack in it up from the current folder, else the stack this
user started last (``stack up`` leaves a note of its home in ``$XDG_STATE_HOME/govflow/stack``). The
ports the stack was started on come with it, unless set. Set ``GOVFLOW_TEMPORAL_ADDRESS`` and
``GOVFLOW_DATABASE_URL`` to use a real Temporal cluster and Postgres; then nothing embedded is started.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from govflow.policies.errors import GovflowError

PREFIX = "GOVFLOW_"
# Read elsewhere: by the test suite, and by `govflow worker` (its --app default).
_NOT_SETTINGS = frozenset({"GOVFLOW_TEST_DATABASE_URL", "GOVFLOW_APP", "GOVFLOW_DEBUG"})
_MISSPELT = 0.85
"""How alike an unknown variable and a setting must be (difflib's ratio) to be refused as a typo of it:
GOVFLOW_TASKQUEUE (0.97) and GOVFLOW_TEMPORAL_UI (0.90) are, GOVFLOW_LEADS_HOOK_SECRET is like none."""


class SettingsError(GovflowError):
    """An environment variable has a value govflow cannot use."""


class Settings(BaseModel):
    """govflow's settings; read them with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(
        default=Path(".govflow"),
        description="Folder for the local stack's state and logs; unset: found (the nearest .govflow/ with a "
        "stack, up from the current folder, else the stack this user started last).",
    )
    temporal_address: str | None = Field(
        default=None,
        description="host:port of a Temporal frontend; unset means the local dev server.",
    )
    temporal_namespace: str = "default"
    temporal_port: int = Field(default=7233, ge=1, le=65535, description="Local dev server port.")
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535, description="Local Web UI port.")
    temporal_ui_url: str | None = Field(
        default=None,
        description="The Temporal UI's address, for links in notifications; unset means the local one "
        "(with a remote GOVFLOW_TEMPORAL_ADDRESS and no UI URL, notifications carry no link).",
    )
    task_queue: str = Field(default="govflow", min_length=1)
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    database_url: str | None = Field(default=None, description="Postgres URL; unset means the local embedded Postgres.")
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="The worker's Prometheus endpoint (govflow_* metrics); 0: off."
    )
    policy_dir: Path | None = Field(
        default=None,
        description="Folder of policy files the worker's app loads (a mounted ConfigMap); unset: the examples.",
    )
    keys_dir: Path | None = Field(
        default=None,
        description="Folder of personal Ed25519 key files (<person>.pem): the CLI signs a person's acts with "
        "theirs when no --key is given.",
    )
    sdk_metrics_port: int = Field(
        default=9465, ge=0, le=65535, description="The Temporal SDK's own Prometheus endpoint (temporal_*); 0: off."
    )
    deployment_name: str | None = Field(
        default=None,
        min_length=1,
        description="Worker Versioning: the worker deployment this worker is a version of (with GOVFLOW_BUILD_ID); "
        "unset: an unversioned worker.",
    )
    build_id: str | None = Field(
        default=None, min_length=1, description="Worker Versioning: this worker's build id within its deployment."
    )

    console_port: int = Field(default=8280, ge=1, le=65535, description="The reviewer console's port.")
    console_host: str = Field(
        default="127.0.0.1", min_length=1, description="The address the console listens on (0.0.0.0 in a container)."
    )
    console_origin: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+$",
        description="The reviewer console's public origin (scheme://host[:port], as browsers reach it, e.g. behind "
        "a reverse proxy); a passkey is bound to its host. Unset: http://localhost:<GOVFLOW_CONSOLE_PORT>.",
    )
    console_session_minutes: int = Field(
        default=60, ge=1, le=24 * 60, description="How long a reviewer's console session lasts after sign-in."
    )

    @property
    def console_url(self) -> str:
        """The console's origin as browsers reach it."""
        return self.console_origin or f"http://localhost:{self.console_port}"

    @model_validator(mode="after")
    def _deployment_pair(self) -> Settings:
        if (self.deployment_name is None) != (self.build_id is None):
            raise ValueError("GOVFLOW_DEPLOYMENT_NAME and GOVFLOW_BUILD_ID go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("GOVFLOW_TEMPORAL_TLS_CERT and GOVFLOW_TEMPORAL_TLS_KEY go together: set both or neither")
        if self.temporal_api_key is not None and self.temporal_address is None:
            raise ValueError(
                "GOVFLOW_TEMPORAL_API_KEY is set but GOVFLOW_TEMPORAL_ADDRESS is not: "
                "an API key is for a remote cluster (e.g. Temporal Cloud)"
            )
        return self

    @property
    def embedded_temporal(self) -> bool:
        """No Temporal address is set: the local stack's dev server."""
        return self.temporal_address is None

    @property
    def embedded_database(self) -> bool:
        """No database URL is set: the local stack's embedded Postgres."""
        return self.database_url is None

    @property
    def target_temporal_address(self) -> str:
        """Where to connect: the address set, else the local dev server's."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def ui_url(self) -> str | None:
        """The Temporal UI, for links: the URL set, else the local dev server's (None for a cluster without one)."""
        if self.temporal_ui_url:
            return self.temporal_ui_url
        return f"http://127.0.0.1:{self.temporal_ui_port}" if self.embedded_temporal else None


def setting_names() -> set[str]:
    """Every environment variable govflow reads."""
    return {PREFIX + name.upper() for name in Settings.model_fields}


def misspelt_settings(environ: dict[str, str]) -> list[tuple[str, str]]:
    """``GOVFLOW_*`` variables that look like a setting misspelt: ``(variable, the setting meant)``.

    Other ``GOVFLOW_*`` variables are not govflow's to refuse: a policy may name one as a secret
    (``secret: {env: GOVFLOW_LEADS_HOOK_SECRET}``), and a deployment may keep its own beside ours.
    """
    known = sorted(setting_names() | _NOT_SETTINGS)
    out = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=_MISSPELT)
            if close:
                out.append((name, close[0]))
    return out


STACK_SETTINGS = ("temporal_port", "temporal_ui_port", "temporal_namespace", "console_port")
"""What ``stack up`` records in its state file: a command run later, from anywhere, finds the stack there."""


def stack_pointer(environ: dict[str, str]) -> Path:
    """The file where ``stack up`` notes the home of the stack this user started last."""
    state = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".local" / "state")
    return Path(state) / "govflow" / "stack"


def find_home(environ: dict[str, str], cwd: Path | None = None) -> Path:
    """The local stack's home when GOVFLOW_HOME is not set: the nearest ``.govflow/`` holding a stack, up from
    ``cwd``; else the one ``stack up`` noted last, while it still holds a stack; else ``.govflow`` here."""
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".govflow" / "stack.json").is_file():
            return folder / ".govflow"
    try:
        noted = Path(stack_pointer(environ).read_text().strip())
    except OSError:
        noted = None
    if noted is not None and noted.is_absolute() and (noted / "stack.json").is_file():
        return noted
    return here / ".govflow"


def stack_state(home: Path) -> dict[str, Any]:
    """What ``stack up`` recorded in ``home/stack.json`` (empty when there is nothing readable)."""
    try:
        state = json.loads((home / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def stack_database_url(settings: Settings) -> str | None:
    """The evidence database: GOVFLOW_DATABASE_URL, else the local stack's while it runs (None without one)."""
    url = settings.database_url or stack_state(settings.home.resolve()).get("database_url")
    return url if isinstance(url, str) else None


def database_url(settings: Settings) -> str:
    """The evidence database: GOVFLOW_DATABASE_URL, else the local stack's (which must be up)."""
    url = stack_database_url(settings)
    if url is None:
        raise SettingsError(
            "no database: start the local stack with `govflow stack up`, or set GOVFLOW_DATABASE_URL to a Postgres URL"
        )
    return url


def recorded_stack(home: Path) -> dict[str, object]:
    """The settings the stack at ``home`` was started with (empty when none runs there)."""
    recorded = stack_state(home).get("settings")
    return {k: v for k, v in recorded.items() if k in STACK_SETTINGS} if isinstance(recorded, dict) else {}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment; a typo'd or invalid variable is a clear error."""
    env = dict(os.environ if environ is None else environ)
    misspelt = misspelt_settings(env)
    if misspelt:
        raise SettingsError(
            "unknown setting "
            + ", ".join(f"{name} (did you mean {meant}?)" for name, meant in misspelt)
            + f"; govflow reads: {', '.join(sorted(setting_names()))}"
        )
    values: dict[str, object] = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k in setting_names()}
    if "home" not in values:
        values["home"] = find_home(env)
    for key, value in recorded_stack(Path(str(values["home"]))).items():
        values.setdefault(key, value)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            name = PREFIX + where.upper() if where else "settings"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
