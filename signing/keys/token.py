"""PKCS#11 key source: one session and one lock per token per process, reopened when it drops.

Rules implemented here:

* PKCS#11 sessions are not safe for concurrent operations, so every operation on a token (object
  lookup, signature) holds that token's lock.
* When the token drops (session handle invalid or closed, token removed, user logged out, an
  object handle gone with a deleted token) the session is reopened, the user logs in again with
  the PIN from the PIN file, objects are looked up again and the signature is retried once. A
  second failure raises :class:`TokenError`; so does any other PKCS#11 failure while signing —
  a token fault is never reported as a fault of the document being signed.
* ECDSA keys sign with the raw mechanism (SoftHSM 2.6 has no hash-then-sign ECDSA) unless the
  alias sets ``raw_mechanism = false``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pkcs11 import exceptions as p11_exc
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.sign import pkcs11 as ph_pkcs11
from pyhanko.sign import signers

from signing.keys import KeyAlias, KeyLoadError, KeySource, TokenError, _load_chain, read_secret

#: Failures after which the session is reopened and the operation retried once.
RECOVERABLE = (
    p11_exc.SessionHandleInvalid,
    p11_exc.SessionClosed,
    p11_exc.TokenNotPresent,
    p11_exc.DeviceRemoved,
    p11_exc.UserNotLoggedIn,
    p11_exc.DeviceError,
    p11_exc.ObjectHandleInvalid,  # the token was deleted or re-initialised under the session
    p11_exc.KeyHandleInvalid,
)

#: Anything the PKCS#11 stack raises (python-pkcs11's errors and pyHanko's lookups).
P11_ERRORS = (p11_exc.PKCS11Error, ph_pkcs11.PKCS11Error)


@dataclass(eq=False)
class TokenSession:
    """The one session this process keeps with one token, and the lock that serialises it."""

    module: str
    criteria: TokenCriteria | None
    slot: int | None
    pin: str | None = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    session: object | None = field(default=None, repr=False)
    reopen_count: int = 0

    def open(self):
        """The open session (opening and logging in if needed). Call with ``lock`` held."""
        if self.session is None:
            try:
                self.session = ph_pkcs11.open_pkcs11_session(
                    self.module, slot_no=self.slot, token_criteria=self.criteria, user_pin=self.pin
                )
            except p11_exc.PinIncorrect as exc:
                raise KeyLoadError("PKCS#11 login failed: incorrect PIN") from exc
            except p11_exc.UserAlreadyLoggedIn:
                # login state is per application: another session of this process holds it
                self.session = ph_pkcs11.open_pkcs11_session(
                    self.module, slot_no=self.slot, token_criteria=self.criteria
                )
            except (p11_exc.PKCS11Error, ph_pkcs11.PKCS11Error) as exc:
                msg = f"cannot open PKCS#11 session: {type(exc).__name__} {exc}"
                raise TokenError(msg) from exc
        return self.session

    def drop(self) -> None:
        """Forget the session (closing it if still possible). Call with ``lock`` held."""
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except p11_exc.PKCS11Error:
                pass


_TOKENS: dict[tuple, TokenSession] = {}
_TOKENS_LOCK = threading.Lock()


def token_session(config: KeyAlias) -> TokenSession:
    """The process-wide session for the token an alias points to."""
    serial = bytes.fromhex(config.token_serial) if config.token_serial else None
    key = (str(config.module), config.token_label, serial, config.slot)
    with _TOKENS_LOCK:
        tok = _TOKENS.get(key)
        if tok is None:
            criteria = None
            if config.token_label or serial:
                criteria = TokenCriteria(label=config.token_label, serial=serial)
            pin = read_secret(config.pin_file)
            tok = _TOKENS[key] = TokenSession(
                module=str(config.module),
                criteria=criteria,
                slot=config.slot,
                pin=pin.decode("utf-8") if pin is not None else None,
            )
        return tok


class LockedPkcs11Signer(ph_pkcs11.PKCS11Signer):
    """pyHanko PKCS#11 signer that serialises token access and survives a dropped session."""

    def __init__(self, token: TokenSession, **kwargs):
        self._token = token
        with token.lock:
            super().__init__(pkcs11_session=token.open(), **kwargs)
            self._load_objects()
            if kwargs.get("use_raw_mechanism") is None:
                algo = self.signing_cert.public_key.algorithm
                self.use_raw_mechanism = algo == "ec"

    def _reload(self) -> None:
        tok = self._token
        tok.drop()
        tok.reopen_count += 1
        self.pkcs11_session = tok.open()
        self._loaded = False
        self._key_handle = None
        self._load_objects()

    async def ensure_objects_loaded(self):
        if not self._loaded:
            with self._token.lock:
                try:
                    if self._token.session is not self.pkcs11_session:
                        self.pkcs11_session = self._token.open()
                    self._load_objects()
                except P11_ERRORS as exc:
                    raise TokenError(f"PKCS#11 objects not found: {type(exc).__name__}"
                                     ) from exc

    def sign_with_token(self, data: bytes, digest_algorithm: str) -> bytes:
        """Raw signature on the token, under its lock, retried once after reopening."""
        spec = self._select_pkcs11_signing_params(
            digest_algorithm, sign_kwargs=self.sign_kwargs(data)
        )
        if spec.pre_sign_transform is not None:
            data = spec.pre_sign_transform(data)
        with self._token.lock:
            for attempt in (1, 2):
                try:
                    if self._token.session is not self.pkcs11_session or not self._loaded:
                        # another signer on this token reopened it, or the last attempt failed
                        self.pkcs11_session = self._token.open()
                        self._loaded = False
                        self._load_objects()
                    signature = self._key_handle.sign(data, **spec.sign_kwargs)
                    break
                except RECOVERABLE as exc:
                    if attempt == 2:
                        raise TokenError(
                            f"PKCS#11 token failed after reopening: {type(exc).__name__}"
                        ) from exc
                    try:
                        self._reload()
                    except P11_ERRORS as again:  # objects gone from the reopened token
                        raise TokenError(f"PKCS#11 token failed after reopening: "
                                         f"{type(again).__name__}") from again
                except P11_ERRORS as exc:
                    raise TokenError(f"PKCS#11 signature failed: {type(exc).__name__}") from exc
        if spec.post_sign_transform is not None:
            signature = spec.post_sign_transform(signature)
        return signature

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        if dry_run:
            return self.estimate_raw_signature_size_bytes() * b"0"
        return self.sign_with_token(data, digest_algorithm)


class Pkcs11KeySource(KeySource):
    """A key on a PKCS#11 token (HSM, USB token, SoftHSM2)."""

    def _build_signer(self) -> signers.Signer:
        cfg = self.config
        token = token_session(cfg)
        chain = _load_chain(cfg.chain) if cfg.chain else None
        try:
            return LockedPkcs11Signer(
                token,
                cert_label=cfg.cert_label,
                cert_id=cfg.cert_id,
                key_label=cfg.key_label,
                key_id=cfg.key_id,
                ca_chain=chain,
                other_certs_to_pull=None,
                use_raw_mechanism=cfg.raw_mechanism,
            )
        except ph_pkcs11.PKCS11Error as exc:  # pyHanko: object not found, ambiguous, ...
            raise KeyLoadError(f"key {cfg.alias!r}: {exc}") from exc
        except p11_exc.PKCS11Error as exc:  # the token failed while objects were looked up
            raise TokenError(f"key {cfg.alias!r}: PKCS#11 {type(exc).__name__}") from exc

    @property
    def token(self) -> TokenSession:
        return token_session(self.config)

    def close(self) -> None:
        super().close()
        tok = self.token
        with tok.lock:
            tok.drop()
