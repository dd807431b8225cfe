"""Typed configuration, validated at start.

Sources, highest priority first: environment variables (prefix ``EDOC_``, nested
with ``__``), the TOML file named by ``--config`` or ``EDOC_CONFIG``, defaults.
Every secret can instead come from a file: ``EDOC_DATABASE_URL_FILE``,
``secret_file`` of an axis connection, ``pin_file`` of a key, and so on, so that
container secrets never sit in the environment.

A wrong or missing setting raises :class:`ConfigError` whose message is one line
naming the setting (``EDOC_AXIS__0__ENDPOINT: field required``).
"""

from __future__ import annotations

import math
import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from signing.trust import RevocationCache

ENV_PREFIX = "EDOC_"

#: Environment variables of earlier releases, read when the setting they became is not set.
LEGACY_ENV = {"EDOC_SIGN_RATE_PER_TOKEN": "rate_per_token",
              "EDOC_SIGN_RATE_PER_KEY": "rate_per_key"}


class ConfigError(Exception):
    """Configuration is missing or wrong; ``str()`` is one line naming the setting."""

    code = "CONFIG_INVALID"


def _read_secret_file(path: str, setting: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file for {setting}: {exc.strerror}") from None


class AxisConnection(BaseModel):
    """One connection to an exchange axis (national VDXP or a provincial LGSP)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    kind: Literal["vdxp", "lgsp"] = "vdxp"
    endpoint: str
    system_id: str
    secret: SecretStr | None = None
    secret_file: str | None = None
    #: The OrganId this connection speaks for (the sender of our status messages).
    organ_id: str
    poll_interval: float = Field(default=5.0, gt=0)
    #: When set, an idle connection is polled less and less often: after each round that
    #: listed nothing the wait doubles, from ``poll_interval`` up to this; the first package
    #: listed brings it back to ``poll_interval``. A package that arrives on an idle
    #: connection waits at most this long; an idle gateway spends that much less CPU.
    idle_poll_interval: float | None = Field(default=None, gt=0)
    #: Packages taken in at once per poll round. Each one spends as much time fetching,
    #: storing and acknowledging as it spends in the signing pool, so twice the pool's usual
    #: size keeps the pool busy (the pool's own queue bound makes intakes wait, never fail).
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _idle_not_faster(self) -> AxisConnection:
        if self.idle_poll_interval is not None and self.idle_poll_interval < self.poll_interval:
            raise ValueError("idle_poll_interval must not be shorter than poll_interval")
        return self

    @model_validator(mode="after")
    def _secret_from_file(self) -> AxisConnection:
        if self.secret is None and self.secret_file:
            self.secret = SecretStr(_read_secret_file(self.secret_file, f"axis {self.name} secret"))
        if self.secret is None:
            raise ValueError("secret or secret_file is required")
        return self


class ServedAgency(BaseModel):
    """An agency whose eOffice this gateway serves (documents addressed to it are accepted)."""

    code: str = Field(min_length=1, max_length=64)
    name: str = ""
    #: Which axis connection carries this agency's traffic.
    axis: str | None = None
    #: Key alias (of ``signing.keys_file``: PKCS#12 or PKCS#11, role ``agency``) of the agency
    #: seal the gateway applies to this agency's outbound documents (``POST /v1/outbound``).
    seal_key: str | None = Field(default=None, min_length=1, max_length=128)
    #: Seal every outbound document of this agency unless its metadata says ``seal: false``.
    seal: bool = False

    @model_validator(mode="after")
    def _seal_needs_key(self) -> ServedAgency:
        if self.seal and not self.seal_key:
            raise ValueError(f"agency {self.code}: seal = true needs seal_key")
        return self


class SigningSettings(BaseModel):
    keys_file: str | None = None
    trust_bundles: list[str] = Field(default_factory=list)
    workers: int = Field(default=2, ge=1, le=64)
    max_queue: int = Field(default=64, ge=1)
    offline: bool = False
    #: Reject (status 02) documents whose PDF signatures are invalid; otherwise flag only.
    reject_invalid: bool = True
    #: Reject documents without any PDF signature.
    reject_unsigned: bool = False
    #: Address space (MiB) one signing or verification job may use; a job over it is stopped
    #: with ``PDF_TOO_COMPLEX`` and never retried (RLIMIT_AS of the worker process).
    job_memory_mb: int = Field(default=1536, ge=256)
    #: Wall-clock seconds one job may take; a job over it has its worker killed and is answered
    #: ``PDF_TIMEOUT``, never retried.
    job_timeout: float = Field(default=60.0, gt=0)
    #: Workers of the judge pool that only intake may use (API verification never takes the
    #: last ones): inbound documents never starve behind ``/v1/verify`` callers. With a single
    #: worker nothing can be reserved: API jobs share it, and intake still goes first.
    intake_reserved_workers: int = Field(default=1, ge=0)
    #: Largest PDF ``/v1/verify`` accepts (bytes); larger ones are 413 ``PDF_TOO_LARGE``.
    api_verify_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    #: Verifications one token may run at once on ``/v1/verify`` (more: 429 with Retry-After).
    api_verify_per_token: int = Field(default=2, ge=1)
    #: Refuse (422 ``EXISTING_SIGNATURES_INVALID``) to sign a PDF whose existing signatures are
    #: not intact (a ByteRange digest or signature value that does not match); otherwise sign
    #: and warn with ``X-Existing-Signatures: invalid``.
    refuse_invalid_existing: bool = False
    #: Revocation policy of every verification (ETSI EN 319 102-1, see
    #: :mod:`signing.verify.revocation`). ``hard-fail``: a signature whose certificates have no
    #: usable revocation data — embedded in the PDF (DSS), in the CRL cache, or from the CAs'
    #: responders when online — is indeterminate (TRY_LATER), never valid. ``soft-fail``: it
    #: can be valid with a warning, so a revoked signer passes whenever the responders cannot
    #: be reached. Revoked is invalid in both.
    revocation_mode: Literal["hard-fail", "soft-fail"] = "hard-fail"
    #: Folder of the CRL cache the gateway refreshes (DER files named by their SHA-256; the
    #: gateway's processes may share it, operators may copy CRLs in). Unset: kept in memory.
    revocation_cache_dir: str | None = None
    #: Seconds between two refreshes of the CRL cache from the CRL distribution points named
    #: by the trust bundles' certificates (and ``crl_urls``); 0 turns the refresher off.
    crl_refresh_interval: float = Field(default=3600.0, ge=0)
    #: More CRLs to keep fresh, e.g. an issuing CA's own CRL when no bundle certificate names
    #: it (CRL distribution points are written on the certificates a CA issues).
    crl_urls: list[str] = Field(default_factory=list)
    #: RFC 3161 time-stamping authority for ``/v1/sign`` at B-T and above (http or https).
    #: Unset: the older ``[services] tsa_url`` of the key file, else B-T is 422 ``SIGN_NO_TSA``.
    tsa_url: str | None = None
    #: Seconds one TSA (and, for B-LT/B-LTA, revocation) request may take while signing.
    tsa_timeout: float = Field(default=10.0, gt=0, le=300)
    #: More certificates (PEM/DER files, e.g. the issuing CAs) used to build the validation
    #: data of B-LT/B-LTA signatures.
    other_certs: list[str] = Field(default_factory=list)
    #: ``/v1/sign`` requests per minute per token and per key alias (each process; 0: no limit).
    rate_per_token: float = Field(default=30.0, ge=0)
    rate_per_key: float = Field(default=60.0, ge=0)
    #: Seconds between two health checks of every signing key (certificate validity and a
    #: canary signature on a tiny PDF, in the signing pool); 0 turns the checks off.
    key_check_interval: float = Field(default=300.0, ge=0)
    #: A key whose certificate expires within this many days reports ``warning``.
    key_expiry_warning_days: int = Field(default=30, ge=0, le=3650)

    @field_validator("crl_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")
        return urls

    @field_validator("tsa_url")
    @classmethod
    def _tsa_url(cls, url: str | None) -> str | None:
        if url is not None and not url.strip():
            return None
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        return url

    @field_validator("rate_per_token", "rate_per_key", "key_check_interval")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("key_check_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (off) or at least 1 second")
        return value

    @cached_property
    def revocation_cache(self) -> RevocationCache:
        """The one CRL cache of this configuration: the judge verifies with it, the
        refresher (:mod:`gateway.pki.revocation`) fills it."""
        from signing.trust import RevocationCache

        return RevocationCache(self.revocation_cache_dir)


#: What intake does with a document a finding applies to: ``route`` it to the eOffice with the
#: finding flagged (the clerk decides, Decree 30 Art. 21), ``hold`` it for an operator (stored,
#: acknowledged with 01, not routed), or ``reject`` it (status 02 with the reason).
IntakeAction = Literal["route", "hold", "reject"]


class IntakePolicy(BaseModel):
    """Intake's answer to each finding about an inbound document (the strictest one wins).

    Defaults: what cannot be trusted to be the sender's document is rejected (an invalid
    signature, a seal of another agency, a PDF too complex or slow to judge, an attachment
    that is not a readable PDF); what cannot be
    decided now is routed flagged (indeterminate: no revocation data or an unknown CA; no PDF
    signature; a sender with no configured seal certificate), because the receiving clerk must
    check authenticity anyway and a held document delays every lawful one whose CRL is
    unreachable."""

    #: A PDF signature is invalid (altered after signing, revoked signer, bad crypto).
    invalid: IntakeAction = "reject"
    #: A PDF could not be judged within the job limits (PDF_TOO_COMPLEX, PDF_TIMEOUT, crash).
    too_complex: IntakeAction = "reject"
    #: An attachment judged as a PDF (by type, name or header) cannot be read as one
    #: (ATTACHMENT_UNREADABLE): random bytes named ``.pdf``, a PDF damaged by a text conversion.
    #: Nothing of it can be validated: rejected, so that the sender sends the file again.
    unreadable: IntakeAction = "reject"
    #: The agency seal belongs to another agency than the package's From (SIGNER_NOT_SENDER).
    signer_not_sender: IntakeAction = "reject"
    #: The sender has a seal binding (``[[senders]]``) but the package carries no agency seal
    #: (SEAL_MISSING): held, since a forgery signed by any trusted person looks like this.
    unsealed: IntakeAction = "hold"
    #: A signature is indeterminate (untrusted CA, no usable revocation data, expired).
    indeterminate: IntakeAction = "route"
    #: No PDF carries a signature.
    unsigned: IntakeAction = "route"
    #: No seal certificate is configured for the sender (``[[senders]]``): not checked.
    unknown_sender: IntakeAction = "route"
    #: Comments were added to a PDF after a signature that allows it (no DocMDP, or P=3):
    #: the signature stays valid (ISO 32000-2 §12.8.2.2.2), but what the receiver sees on
    #: the page is not only what was signed (ANNOTATED_AFTER_SIGNING). Routed flagged.
    annotated: IntakeAction = "route"


class SenderBinding(BaseModel):
    """Which agency-seal certificates speak for an agency (issue 11: the sender is checked
    against the signer). A seal matches when its certificate's SHA-256 is listed, or when one
    of ``subjects`` matches: ``O=<glob>`` against its organisation, ``CN=<glob>`` against its
    common name (shell-style globs, case-insensitive)."""

    agency: str = Field(min_length=1, max_length=64)
    certificate_sha256: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)

    @field_validator("certificate_sha256")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        out = [v.replace(":", "").strip().lower() for v in values]
        for v in out:
            if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
                raise ValueError(f"not a SHA-256 fingerprint: {v!r}")
        return out

    @field_validator("subjects")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        for v in values:
            attr, _, glob = v.partition("=")
            if attr.strip().upper() not in ("O", "CN") or not glob.strip():
                raise ValueError(f"subject pattern must be O=<glob> or CN=<glob>: {v!r}")
        return values


class BusSettings(BaseModel):
    prefix: str = Field(default="edoc", pattern=r"^[a-zA-Z0-9_.-]{1,40}$")
    delivery_limit: int = Field(default=5, ge=1)
    max_length: int = Field(default=100_000, ge=1)
    #: Delays of the adapters' retry ladder, in seconds (one TTL queue per step).
    retry_delays: list[float] = Field(default_factory=lambda: [5.0, 30.0, 300.0])
    publish_timeout: float = Field(default=10.0, gt=0)
    inline_threshold: int = Field(default=64 * 1024, ge=0)


class RelaySettings(BaseModel):
    batch_size: int = Field(default=200, ge=1, le=5000)
    poll_interval: float = Field(default=0.25, gt=0)


class OutboundSettings(BaseModel):
    """Tracking of sent copies (``getSentEdocList``, :mod:`gateway.outbound.tracking`)."""

    #: Hours after a copy was sent during which its axis receive state is polled (then it
    #: is ``EXPIRED``: the receiver's business statuses still arrive and count).
    track_for: float = Field(default=72.0, gt=0, le=24 * 365)
    #: Seconds between two checks of the same copy.
    track_interval: float = Field(default=300.0, gt=0)
    #: Copies checked per round, per axis connection.
    track_batch: int = Field(default=100, ge=1, le=5000)
    #: ``getSentEdocList`` calls per second at most, per axis connection.
    track_rate: float = Field(default=5.0, gt=0)
    #: Seconds between rounds when nothing is due.
    track_tick: float = Field(default=15.0, gt=0)


class Settings(BaseSettings):
    """The whole configuration of one gateway process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/edoc_gateway")
    database_url_file: str | None = None
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    amqp_url_file: str | None = None
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    #: Public base URL adapters use to fetch attachments.
    public_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: OrganId of the gateway itself, written in the TraceHeader of every hop it makes.
    organ_id: str = "gateway"
    max_document_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    bus: BusSettings = Field(default_factory=BusSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    agencies: list[ServedAgency] = Field(default_factory=list)
    axis: list[AxisConnection] = Field(default_factory=list)
    intake: IntakePolicy = Field(default_factory=IntakePolicy)
    #: Seal certificates of sending agencies (``[[senders]]``).
    senders: list[SenderBinding] = Field(default_factory=list)
    #: TOML file this configuration was read from (set by :func:`load_settings`).
    config_file: str | None = None

    @field_validator("database_url", "amqp_url", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        if self.database_url_file:
            self.database_url = SecretStr(_read_secret_file(self.database_url_file, "database_url"))
        if self.amqp_url_file:
            self.amqp_url = SecretStr(_read_secret_file(self.amqp_url_file, "amqp_url"))
        if not self.database_url.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("EDOC_DATABASE_URL must be a postgresql:// URL")
        if not self.amqp_url.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("EDOC_AMQP_URL must be an amqp:// or amqps:// URL")
        # the older switches still work: reject_invalid = false routes invalid documents,
        # reject_unsigned = true rejects unsigned ones
        if not self.signing.reject_invalid and "invalid" not in self.intake.model_fields_set:
            self.intake.invalid = "route"
        if self.signing.reject_unsigned and "unsigned" not in self.intake.model_fields_set:
            self.intake.unsigned = "reject"
        _legacy_rates(self.signing)
        names = [a.name for a in self.axis]
        if len(names) != len(set(names)):
            raise ValueError("axis connection names must be unique")
        for agency in self.agencies:
            if agency.axis is not None and agency.axis not in names:
                raise ValueError(
                    f"agency {agency.code} names unknown axis connection {agency.axis!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file (passed as init kwargs by load_settings).
        return (env_settings, init_settings)

    @property
    def served_codes(self) -> list[str]:
        return [a.code for a in self.agencies]

    def axis_connection(self, name: str) -> AxisConnection:
        for conn in self.axis:
            if conn.name == name:
                return conn
        raise KeyError(name)


def deprecated_env() -> list[str]:
    """Warnings for the environment variables of earlier releases that are set."""
    return [f"{name} is deprecated: use {ENV_PREFIX}SIGNING__{field.upper()}"
            for name, field in LEGACY_ENV.items() if name in os.environ]


def _legacy_rates(signing: SigningSettings) -> None:
    """``EDOC_SIGN_RATE_PER_TOKEN``/``_PER_KEY`` of earlier releases, when the new settings are
    not set (the new ones win); a value that is not a number >= 0 is a configuration error."""
    for name, field in LEGACY_ENV.items():
        value = os.environ.get(name)
        if value is None or field in signing.model_fields_set:
            continue
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"{name}: must be a number >= 0 (deprecated: use "
                             f"{ENV_PREFIX}SIGNING__{field.upper()})")
        setattr(signing, field, rate)  # warned about by check-config and the first /v1/sign


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    if not loc:
        return err.get("msg", "invalid").removeprefix("Value error, ")
    name = ENV_PREFIX + "__".join(loc).upper()
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{name}: {msg}{more}"


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration, raising :class:`ConfigError` with one clear line."""
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"configuration file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from None
        data["config_file"] = str(path)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
