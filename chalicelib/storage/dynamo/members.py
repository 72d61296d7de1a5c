"""The member port on DynamoDB: members, links and login attempts as items of one table.

Every write is conditional. A member is created with a put on condition that its key is absent (a
lost race reads the winner back). A link is added the same way and consumed by ``use_link``: one
transaction that marks the link used on condition it is unused and unexpired, writes the member's
password hash and next session epoch on condition the member is still at the version read (or
absent), and forgets the address's login attempts. Cancellation reasons are read by item position
(the attempts' delete, then the link, then the member: pynamodb sends deletes before updates), never
by message text. A logout (``end_sessions``) adds one to the epoch and the version in one update on
condition only that the member exists, so it never loses a race; a rehash replaces the hash on
condition of the version read. Attempts are replaced on condition of the version read, as the Kit
state is.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib.domain.members import LinkPurpose, LoginAttempts, Member, SetPasswordLink, attempts_expire_at
from chalicelib.services.ports.members import LinkTaken, StaleAttempts, StaleMember, StoredAttempts
from chalicelib.storage.dynamo.mapping import CONDITION_FAILED, can_be_key, failed, utc, utc_or_none
from chalicelib.storage.dynamo.tables import Tables
from chalicelib.storage.models import MemberModel

LINK_KEPT_FOR = timedelta(days=7)
"""How long a link stays stored after it expires (used or not), for an operator to look at; then TTL."""
ATTEMPTS_KEPT_FOR = timedelta(days=1)


def member_key(email: str) -> str:
    return f"member#{email}"


def link_key(digest: str) -> str:
    return f"link#{digest}"


def attempts_key(email: str) -> str:
    return f"attempts#{email}"


class DynamoMembers:
    def __init__(self, tables: Tables) -> None:
        self._items = tables.members
        self._connection = tables.connection

    def get_member(self, email: str) -> Member | None:
        item = self._get(member_key(email))
        return None if item is None else self._member(item)

    @staticmethod
    def _member(item: MemberModel) -> Member:
        return Member(
            email=item.email,
            created_at=utc(item.created_at),
            password_hash=item.password_hash,
            password_set_at=utc_or_none(item.password_set_at),
            version=int(item.version or 1),
            session_epoch=int(item.session_epoch or 0),
        )

    def create_member(self, email: str, now: datetime) -> Member:
        item = self._items(member_key(email), kind="member", email=email, created_at=now, version=1)
        try:
            item.save(condition=MemberModel.key.does_not_exist())
        except PutError as error:
            if error.cause_response_code != CONDITION_FAILED:
                raise
            existing = self.get_member(email)
            if existing is None:  # pragma: no cover - a member is never deleted
                raise
            return existing
        return Member(email=email, created_at=now)

    def add_link(self, link: SetPasswordLink) -> None:
        item = self._items(
            link_key(link.digest),
            kind="link",
            email=link.email,
            purpose=link.purpose.value,
            created_at=link.created_at,
            expires_at=link.expires_at,
            purge_at=link.expires_at + LINK_KEPT_FOR,
        )
        try:
            item.save(condition=MemberModel.key.does_not_exist())
        except PutError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise ValueError("a link with this digest is already stored") from error
            raise

    def get_link(self, digest: str) -> SetPasswordLink | None:
        item = self._get(link_key(digest))
        if item is None or item.kind != "link":
            return None
        return SetPasswordLink(
            digest=digest,
            email=item.email,
            purpose=LinkPurpose(item.purpose),
            created_at=utc(item.created_at),
            expires_at=utc(item.expires_at),
            used_at=utc_or_none(item.used_at),
        )

    def use_link(
        self, link: SetPasswordLink, member: Member | None, password_hash: str, now: datetime
    ) -> Member:
        version = (member.version if member is not None else 0) + 1
        epoch = (member.session_epoch if member is not None else 0) + 1
        created_at = member.created_at if member is not None else now
        unchanged: Condition = (
            MemberModel.key.does_not_exist() if member is None else MemberModel.version == member.version
        )
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.delete(self._items(attempts_key(link.email)))
                tx.update(
                    self._items(link_key(link.digest)),
                    actions=[MemberModel.used_at.set(now)],
                    condition=(
                        MemberModel.key.exists()
                        & MemberModel.used_at.does_not_exist()
                        & (MemberModel.expires_at > now)
                    ),
                )
                tx.update(
                    self._items(member_key(link.email)),
                    actions=[
                        MemberModel.kind.set("member"),
                        MemberModel.email.set(link.email),
                        MemberModel.created_at.set(created_at),
                        MemberModel.password_hash.set(password_hash),
                        MemberModel.password_set_at.set(now),
                        MemberModel.version.set(version),
                        MemberModel.session_epoch.set(epoch),
                    ],
                    condition=unchanged,
                )
        except TransactWriteError as error:
            reasons = error.cancellation_reasons
            if failed(reasons, 1):
                raise LinkTaken("the link was used meanwhile, or has expired") from error
            if failed(reasons, 2) or any(r is not None and r.code == "TransactionConflict" for r in reasons):
                raise StaleMember(f"member {link.email} changed meanwhile") from error
            raise
        return Member(link.email, created_at, password_hash, now, version, epoch)

    def end_sessions(self, email: str) -> Member | None:
        if not can_be_key(member_key(email)):
            return None
        item = self._items(member_key(email))
        try:
            # ADD on both: no read first, so a logout racing any other write still counts.
            item.update(
                actions=[MemberModel.session_epoch.add(1), MemberModel.version.add(1)],
                condition=MemberModel.key.exists() & (MemberModel.kind == "member"),
            )
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                return None
            raise
        return self._member(item)

    def rehash(self, member: Member, password_hash: str) -> Member:
        item = self._items(member_key(member.email))
        try:
            item.update(
                actions=[MemberModel.password_hash.set(password_hash), MemberModel.version.add(1)],
                condition=MemberModel.version == member.version,
            )
        except UpdateError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise StaleMember(f"member {member.email} changed meanwhile") from error
            raise
        return self._member(item)

    def get_attempts(self, email: str) -> StoredAttempts | None:
        item = self._get(attempts_key(email))
        if item is None:
            return None
        attempts = LoginAttempts(
            failures=int(item.failures or 0),
            last_at=utc_or_none(item.last_attempt_at),
            locked_until=utc_or_none(item.locked_until),
        )
        return StoredAttempts(attempts, int(item.version or 1))

    def save_attempts(
        self, email: str, attempts: LoginAttempts, expected_version: int | None
    ) -> StoredAttempts:
        version = 1 if expected_version is None else expected_version + 1
        item = self._items(
            attempts_key(email),
            kind="attempts",
            email=email,
            failures=attempts.failures,
            last_attempt_at=attempts.last_at,
            locked_until=attempts.locked_until,
            version=version,
            purge_at=attempts_expire_at(attempts) + ATTEMPTS_KEPT_FOR,
        )
        unchanged: Condition = (
            MemberModel.key.does_not_exist()
            if expected_version is None
            else MemberModel.version == expected_version
        )
        try:
            item.save(condition=unchanged)
        except PutError as error:
            if error.cause_response_code == CONDITION_FAILED:
                raise StaleAttempts(f"the login attempts of {email} changed meanwhile") from error
            raise
        return StoredAttempts(attempts, version)

    def clear_attempts(self, email: str) -> None:
        self._items(attempts_key(email)).delete()

    def _get(self, key: str) -> MemberModel | None:
        if not can_be_key(key):
            return None
        try:
            # Consistent: a stale read would let a used link or a counted attempt slip through once more.
            return self._items.get(key, consistent_read=True)
        except self._items.DoesNotExist:
            return None
