"""The member port: the in-memory fake must behave exactly like the DynamoDB one on moto.

A member is created once; a link is stored by digest, consumed once (of racing uses exactly one
wins), refused once expired, and a password set with another link in between makes the older use
lose; a password set or a logout ends the member's sessions (one more session epoch), a logout even
racing other writes, and a rehash is saved only under the version read; login attempts are saved
under the version read. On moto, as the function role with IAM
enforced, the stored items are looked at directly: no token, no password, and a TTL on what expires.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.members import LinkPurpose, LoginAttempts, Member, link_digest, new_link
from chalicelib.services.ports import Stores
from chalicelib.services.ports.members import LinkTaken, StaleAttempts, StaleMember, StoredAttempts
from devstack.stack import TABLES
from tests.builders import T0, later, unique_email
from tests.support.aws import AppAws, app_stores

TOKEN = "4LLzaN-LIbgrlrPAiA97hIgpTff_J_jO0O619bI9XBI"
HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"


class TestMembersContract:
    def test_a_member_is_created_once_without_a_password(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.members.get_member(email) is None
        created = stores.members.create_member(email, T0)
        assert created == Member(email, T0)
        assert stores.members.create_member(email, later(5)) == created
        assert stores.members.get_member(email) == created

    def test_a_link_comes_back_by_its_digest(self, stores: Stores) -> None:
        email = unique_email()
        link = new_link(TOKEN + email, email, LinkPurpose.RESET, T0)
        stores.members.add_link(link)
        assert stores.members.get_link(link.digest) == link
        assert stores.members.get_link(link_digest("another token")) is None
        with pytest.raises(ValueError, match="already stored"):
            stores.members.add_link(replace(link, email=unique_email()))

    def test_using_a_link_sets_the_password_once(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        stores.members.add_link(link)

        saved = stores.members.use_link(link, member, HASH, later(1))

        assert saved == Member(email, T0, HASH, later(1), 2, session_epoch=1)
        assert stores.members.get_member(email) == saved
        assert stores.members.get_link(link.digest) == replace(link, used_at=later(1))
        with pytest.raises(LinkTaken):
            stores.members.use_link(link, saved, HASH, later(2))

    def test_a_link_for_a_member_not_stored_creates_the_member(self, stores: Stores) -> None:
        email = unique_email()
        link = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        stores.members.add_link(link)
        assert stores.members.use_link(link, None, HASH, later(1)) == Member(
            email, later(1), HASH, later(1), 1, session_epoch=1
        )

    def test_an_expired_or_unknown_link_is_refused_and_nothing_is_written(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.RESET, T0)
        stores.members.add_link(link)
        with pytest.raises(LinkTaken):
            stores.members.use_link(link, member, HASH, link.expires_at)
        never_stored = new_link("never stored" + email, email, LinkPurpose.RESET, T0)
        with pytest.raises(LinkTaken):
            stores.members.use_link(never_stored, member, HASH, later(1))
        assert stores.members.get_member(email) == member
        assert stores.members.get_link(link.digest) == link

    def test_a_member_changed_since_it_was_read_refuses_the_use_and_leaves_the_link(
        self, stores: Stores
    ) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        first = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        second = new_link(TOKEN + "2" + email, email, LinkPurpose.RESET, T0)
        stores.members.add_link(first)
        stores.members.add_link(second)
        stores.members.use_link(first, member, HASH, later(1))
        with pytest.raises(StaleMember):
            stores.members.use_link(second, member, HASH, later(2))
        assert stores.members.get_link(second.digest) == second

    def test_of_racing_uses_of_one_link_exactly_one_wins(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        stores.members.add_link(link)
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def use(n: int) -> None:
            barrier.wait()
            try:
                stores.members.use_link(link, member, f"{HASH}{n}", later(1))
                outcomes.append("won")
            except (LinkTaken, StaleMember):
                outcomes.append("lost")

        threads = [threading.Thread(target=use, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
        stored = stores.members.get_member(email)
        assert stored is not None
        assert stored.version == 2

    def test_a_logout_ends_the_sessions_whatever_changed_meanwhile(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.members.end_sessions(email) is None
        assert stores.members.get_member(email) is None  # a logout creates no member
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        stores.members.add_link(link)
        stores.members.use_link(link, member, HASH, later(1))  # read before: member is stale now

        ended = stores.members.end_sessions(email)

        assert ended == Member(email, T0, HASH, later(1), 3, session_epoch=2)
        assert stores.members.get_member(email) == ended
        assert stores.members.end_sessions(email) == replace(ended, version=4, session_epoch=3)

    def test_a_password_set_after_a_logout_read_before_it_is_refused(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.RESET, T0)
        stores.members.add_link(link)
        stores.members.end_sessions(email)
        with pytest.raises(StaleMember):
            stores.members.use_link(link, member, HASH, later(1))
        assert stores.members.get_link(link.digest) == link

    def test_of_racing_logouts_every_one_counts(self, stores: Stores) -> None:
        email = unique_email()
        stores.members.create_member(email, T0)
        barrier = threading.Barrier(4)

        def logout() -> None:
            barrier.wait()
            stores.members.end_sessions(email)

        threads = [threading.Thread(target=logout) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = stores.members.get_member(email)
        assert stored is not None
        assert (stored.session_epoch, stored.version) == (4, 5)

    def test_a_rehash_replaces_the_hash_under_the_version_read_only(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        link = new_link(TOKEN + email, email, LinkPurpose.SET_PASSWORD, T0)
        stores.members.add_link(link)
        hashed = stores.members.use_link(link, member, HASH, later(1))
        newer = HASH.replace("m=8,t=1", "m=16,t=2")

        saved = stores.members.rehash(hashed, newer)

        # The same password: when it was set, and the sessions, stay as they were.
        assert saved == replace(hashed, password_hash=newer, version=hashed.version + 1)
        assert stores.members.get_member(email) == saved
        with pytest.raises(StaleMember):
            stores.members.rehash(hashed, HASH)
        stores.members.end_sessions(email)
        with pytest.raises(StaleMember):
            stores.members.rehash(saved, HASH)
        stored = stores.members.get_member(email)
        assert stored is not None
        assert stored.password_hash == newer

    def test_attempts_are_saved_under_the_version_read_and_cleared(self, stores: Stores) -> None:
        email = unique_email()
        assert stores.members.get_attempts(email) is None
        one = LoginAttempts(1, T0)
        assert stores.members.save_attempts(email, one, None) == StoredAttempts(one, 1)
        with pytest.raises(StaleAttempts):
            stores.members.save_attempts(email, one, None)
        locked = LoginAttempts(5, later(1), later(16))
        assert stores.members.save_attempts(email, locked, 1) == StoredAttempts(locked, 2)
        with pytest.raises(StaleAttempts):
            stores.members.save_attempts(email, one, 1)
        assert stores.members.get_attempts(email) == StoredAttempts(locked, 2)
        stores.members.clear_attempts(email)
        stores.members.clear_attempts(email)
        assert stores.members.get_attempts(email) is None

    def test_using_a_link_forgets_the_addresss_attempts(self, stores: Stores) -> None:
        email = unique_email()
        member = stores.members.create_member(email, T0)
        stores.members.save_attempts(email, LoginAttempts(5, T0, later(15)), None)
        link = new_link(TOKEN + email, email, LinkPurpose.RESET, T0)
        stores.members.add_link(link)
        stores.members.use_link(link, member, HASH, later(1))
        assert stores.members.get_attempts(email) is None


@pytest.mark.integration
def test_what_dynamodb_holds_is_digests_and_hashes_and_what_expires_has_a_ttl(aws: AppAws) -> None:
    stores = app_stores()
    email = unique_email()
    member = stores.members.create_member(email, T0)
    link = new_link(TOKEN, email, LinkPurpose.SET_PASSWORD, T0)
    stores.members.add_link(link)
    stores.members.save_attempts(unique_email(), LoginAttempts(1, T0), None)
    stores.members.use_link(link, member, HASH, later(1))
    stores.members.end_sessions(email)

    dynamodb = aws.admin_client("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=TABLES.members)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "purge_at")
    items = {i["key"]["S"].partition("#")[0]: i for i in dynamodb.scan(TableName=TABLES.members)["Items"]}
    assert set(items) == {"member", "link", "attempts"}
    assert TOKEN not in str(items)
    assert items["link"]["key"]["S"] == f"link#{link_digest(TOKEN)}"
    assert int(items["link"]["purge_at"]["N"]) == int((link.expires_at + timedelta(days=7)).timestamp())
    assert "purge_at" in items["attempts"]
    assert "purge_at" not in items["member"]
    assert items["member"]["password_hash"]["S"] == HASH
    # A session is a number on the member, nothing more: no token, no session item.
    assert (items["member"]["session_epoch"]["N"], items["member"]["version"]["N"]) == ("2", "3")
