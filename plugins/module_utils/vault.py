# -*- coding: utf-8 -*-
# Internal to the netboot.talos collection: may change in any release.
"""Files under clusters/<name>/ kept in the Ansible vault format, so `ansible-vault view` opens them.

Modules cannot reach Ansible's vault secrets; the collection's action plugins hand them over as the
no_log option `vault_secrets` (see plugins/plugin_utils/vault.py), and configure() makes them the
keyring of this process. files.read_secret() and files.ensure_secret_file() use that keyring: with
one, secret files are written encrypted; without one, an encrypted file is refused, never replaced.

The envelope (format 1.1, or 1.2 naming the vault id): a header line `$ANSIBLE_VAULT;1.1;AES256`,
then, hexlified and wrapped at 80 columns, hex(salt) LF hex(HMAC) LF hex(ciphertext). PBKDF2-HMAC-
SHA256 over the password with the 32-byte salt, 10000 rounds, gives 80 bytes: the AES-256 key, the
HMAC-SHA256 key and the CTR counter's start; the plaintext is PKCS#7-padded to 16 bytes first.
"""

from __future__ import annotations

import binascii
import contextlib
import hmac
import os

from ansible_collections.netboot.talos.plugins.module_utils import libraries

try:
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
except ImportError as exc:
    libraries.missing(exc)

MAGIC = b"$ANSIBLE_VAULT"
DEFAULT_ID = "default"
ITERATIONS = 10000
SALT_BYTES = 32
LINE = 80

# Modules take the secrets as this option; only the collection's action plugins fill it in.
OPTIONS = dict(vault_secrets=dict(type="list", elements="dict", no_log=True))

HOW_TO_PASS = "pass its password (--vault-id, --vault-password-file or ANSIBLE_VAULT_PASSWORD_FILE)"


class VaultError(Exception):
    """A file that cannot be read or written as asked; the message names the file and what to do."""


def is_encrypted(data):
    return data is not None and data.startswith(MAGIC + b";")


def _keys(password, salt):
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=ITERATIONS).derive(password)
    return derived[:32], derived[32:64], derived[64:]


def _ctr(key, counter):
    return Cipher(algorithms.AES(key), modes.CTR(counter))


def encrypt(plaintext, password, vault_id=DEFAULT_ID):
    """The vault envelope of plaintext (bytes) under password (bytes); a fresh salt every time."""
    libraries.check("cryptography")
    salt = os.urandom(SALT_BYTES)
    aes_key, hmac_key, counter = _keys(password, salt)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _ctr(aes_key, counter).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    signature = hmac.new(hmac_key, ciphertext, "sha256").digest()
    body = binascii.hexlify(b"\n".join(binascii.hexlify(part) for part in (salt, signature, ciphertext)))
    header = MAGIC + b";1.1;AES256" if vault_id in (None, DEFAULT_ID) else MAGIC + b";1.2;AES256;" + vault_id.encode("utf-8")
    lines = [header] + [body[i:i + LINE] for i in range(0, len(body), LINE)]
    return b"\n".join(lines) + b"\n"


def envelope_id(data):
    """The vault id a 1.2 envelope names, or None."""
    fields = data.split(b"\n", 1)[0].strip().split(b";")
    return fields[3].decode("utf-8", "replace") if len(fields) > 3 and fields[1] == b"1.2" else None


def _parts(data):
    lines = data.split(b"\n")
    fields = lines[0].strip().split(b";")
    if len(fields) < 3 or fields[2] != b"AES256":
        raise ValueError("not an AES256 vault envelope")
    salt, signature, ciphertext = binascii.unhexlify(b"".join(line.strip() for line in lines[1:])).split(b"\n", 2)
    return binascii.unhexlify(salt), binascii.unhexlify(signature), binascii.unhexlify(ciphertext)


def _open_with(parts, password):
    salt, signature, ciphertext = parts
    aes_key, hmac_key, counter = _keys(password, salt)
    if not hmac.compare_digest(hmac.new(hmac_key, ciphertext, "sha256").digest(), signature):
        return None
    decryptor = _ctr(aes_key, counter).decryptor()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()


class Keyring:
    """The vault secrets of a run: (vault id, password bytes) pairs, and the one that encrypts."""

    def __init__(self, secrets, encrypt_id=None):
        self.secrets = [(vault_id or DEFAULT_ID, password) for vault_id, password in secrets]
        self.encrypt_id = encrypt_id

    @classmethod
    def from_option(cls, value):
        """The keyring of a `vault_secrets` option value, or None when it is empty."""
        if not value:
            return None
        secrets = [(entry.get("id"), entry["secret"].encode("utf-8")) for entry in value if entry.get("secret") is not None]
        encrypting = [entry.get("id") for entry in value if entry.get("encrypt")]
        return cls(secrets, encrypting[0] if encrypting else None) if secrets else None

    def to_option(self):
        return [{"id": vault_id, "secret": password.decode("utf-8"), "encrypt": vault_id == self.encrypt_id}
                for vault_id, password in self.secrets]

    def encrypting(self):
        """(vault id, password) that encrypts; the first secret unless encrypt_id names another."""
        for vault_id, password in self.secrets:
            if self.encrypt_id in (None, vault_id):
                return vault_id, password
        raise VaultError("talos_vault_id: no vault secret with id %r is loaded (loaded: %s); pass --vault-id %s@<password file>"
                         % (self.encrypt_id, ", ".join(v for v, _p in self.secrets), self.encrypt_id))

    def encrypt(self, plaintext):
        vault_id, password = self.encrypting()
        return encrypt(plaintext, password, vault_id)

    def decrypt(self, path, data):
        """The plaintext of an envelope read from path; VaultError when no loaded secret opens it."""
        libraries.check("cryptography")
        try:
            parts = _parts(data)
        except (ValueError, binascii.Error, TypeError):
            raise VaultError("%s: starts like an Ansible vault file but its envelope is damaged" % path) from None
        named = envelope_id(data)
        ordered = sorted(self.secrets, key=lambda secret: secret[0] != named)
        for _vault_id, password in ordered:
            try:
                plaintext = _open_with(parts, password)
            except ValueError:
                plaintext = None
            if plaintext is not None:
                return plaintext
        raise VaultError("%s: no vault secret given opens it (wrong password?); %s%s"
                         % (path, HOW_TO_PASS.replace("pass its", "pass the right"), " for vault id %r" % named if named else ""))


_ACTIVE = {"keyring": None, "module": None}


def active():
    """The keyring of this process, or None."""
    return _ACTIVE["keyring"]


def refuse(message):
    """Stop on a file that cannot be opened: the module of this process fails with message (before it
    has changed anything: secret files are read first); elsewhere VaultError is raised."""
    if _ACTIVE["module"] is not None:
        _ACTIVE["module"].fail_json(msg=message)
    raise VaultError(message)


def configure(module):
    """Make the keyring of the module's `vault_secrets` option this process's; fail clearly on a bad one."""
    try:
        keyring = Keyring.from_option(module.params.get("vault_secrets"))
        if keyring is not None:
            libraries.check("cryptography")
            keyring.encrypting()
    except (VaultError, KeyError, AttributeError, ImportError) as exc:
        module.fail_json(msg="vault_secrets: %s" % exc)
    _ACTIVE.update(keyring=keyring, module=module)


@contextlib.contextmanager
def using(keyring, module=None):
    """Run a block (an action plugin's in-process work) with keyring as this process's."""
    previous = dict(_ACTIVE)
    _ACTIVE.update(keyring=keyring, module=module)
    try:
        yield keyring
    finally:
        _ACTIVE.update(previous)
