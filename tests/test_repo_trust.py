"""Trust rules shared by setup, repo, refresh-repo and root (pubsys/repo/trust.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import TOP_LEVEL_ROLE_NAMES, Metadata, Root

from pubsys.errors import SigningKeyError
from pubsys.keys import NamedSigner
from pubsys.repo.roles import TOP_ROLES
from pubsys.repo.trust import new_root, root_signing_status, signers_for_role

IN_A_YEAR = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=365)


def _signer(label: str) -> NamedSigner:
    return NamedSigner(CryptoSigner.generate_ecdsa(), label)


def test_our_role_order_names_exactly_tufs_top_level_roles():
    assert set(TOP_ROLES) == TOP_LEVEL_ROLE_NAMES and len(TOP_ROLES) == 4


def test_new_root_trusts_root_keys_for_root_and_signing_keys_for_the_rest():
    root_key, signing = _signer("root"), _signer("signing")
    root = new_root(IN_A_YEAR, [root_key.signer.public_key], [signing.signer.public_key],
                    root_threshold=1, threshold=1)
    assert root.version == 1 and root.consistent_snapshot
    assert root.roles["root"].keyids == [root_key.keyid]
    for role in ("targets", "snapshot", "timestamp"):
        assert root.roles[role].keyids == [signing.keyid]
    assert set(root.keys) == {root_key.keyid, signing.keyid}


def test_signing_status_counts_the_previous_version_and_its_own():
    old, new = _signer("old"), _signer("new")
    v1 = Metadata(new_root(IN_A_YEAR, [old.signer.public_key], [old.signer.public_key]))
    v2 = Metadata(new_root(IN_A_YEAR, [new.signer.public_key], [new.signer.public_key]))
    v2.signed.version = 2
    v2.sign(new.signer)
    status = root_signing_status(v2, v1.signed)
    assert [(s.version, s.signed, s.met) for s in status] == [(1, 0, False), (2, 1, True)]
    v2.sign(old.signer, append=True)
    assert all(s.met for s in root_signing_status(v2, v1.signed))


def test_signers_for_role_names_the_keys_root_does_not_trust():
    trusted, stranger = _signer("file:trusted.pem"), _signer("kms:alias/stranger")
    root: Root = new_root(IN_A_YEAR, [trusted.signer.public_key], [trusted.signer.public_key])
    assert signers_for_role(root, "targets", [trusted, stranger]) == [trusted]
    with pytest.raises(SigningKeyError, match="not trusted for snapshot: kms:alias/stranger"):
        signers_for_role(root, "snapshot", [stranger])
