"""What sandboxes read out of a request (:mod:`pixecom_core.testing.sandbox_requests`):
credentials, bodies, idempotent replays and bounded maps. Stripe's and PayPal's sandboxes
word the refusals; these tests pin the machinery under both."""

from __future__ import annotations

import base64

import pytest

from pixecom_core.testing.sandbox_requests import (
    IdempotencyConflict,
    IdempotentReplays,
    MalformedBody,
    Ownership,
    basic_credentials,
    bearer_token,
    forget_oldest,
    form_pairs,
    json_body,
    utc_stamp,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_bearer_tokens_are_read_only_under_the_schemes_the_provider_accepts() -> None:
    assert bearer_token("Bearer  tok_1 ") == "tok_1"
    assert bearer_token("bearer tok_1") == "tok_1"
    assert bearer_token("OAuth tok_1") == ""
    assert bearer_token("OAuth tok_1", ("bearer", "oauth")) == "tok_1"
    assert bearer_token(basic("user:pass")) == ""
    assert bearer_token(None) == bearer_token("") == bearer_token("Bearer") == ""


def test_basic_credentials_split_at_the_first_colon_and_refuse_what_does_not_decode() -> None:
    assert basic_credentials(basic("client:se:cret")) == ("client", "se:cret")
    assert basic_credentials(basic("sk_test_1:")) == ("sk_test_1", "")
    assert basic_credentials(basic("no-colon")) == ("no-colon", "")
    assert basic_credentials("Basic not base64!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"\xff\xfe").decode()) is None
    assert basic_credentials("Bearer tok_1") is None
    assert basic_credentials(None) is None


def test_json_bodies_of_the_expected_kind_are_read_and_others_refused_with_a_reason() -> None:
    assert json_body(b'{"a": 1}') == {"a": 1}
    assert json_body(b" ") == {}
    assert json_body(b"", expect=list) == []
    assert json_body(b'[{"number": "1"}]', expect=list) == [{"number": "1"}]
    with pytest.raises(MalformedBody, match="not well formed"):
        json_body(b"{nope")
    with pytest.raises(MalformedBody, match="not an object"):
        json_body(b"[1]")
    with pytest.raises(MalformedBody, match="not an array"):
        json_body(b'{"a": 1}', expect=list)


def test_form_bodies_keep_order_and_blanks_and_refuse_what_is_not_utf8() -> None:
    assert form_pairs(b"metadata[b]=2&metadata[a]=&expand[]=x") == [
        ("metadata[b]", "2"),
        ("metadata[a]", ""),
        ("expand[]", "x"),
    ]
    with pytest.raises(MalformedBody, match="not UTF-8"):
        form_pairs(b"amount=\xff")


def test_utc_stamps_are_iso_8601_in_utc_with_optional_milliseconds() -> None:
    assert utc_stamp(0) == "1970-01-01T00:00:00Z"
    assert utc_stamp(1_767_225_600.1239, milliseconds=True) == "2026-01-01T00:00:00.123Z"


def test_forget_oldest_makes_room_for_one_more_by_dropping_the_oldest() -> None:
    items = {f"k{n}": n for n in range(5)}
    forget_oldest(items, 3)
    assert list(items) == ["k3", "k4"]
    forget_oldest(items, 3)
    assert list(items) == ["k3", "k4"]


def test_a_replay_answers_the_first_result_once_computed_and_never_shares_it() -> None:
    replays: IdempotentReplays[dict[str, int]] = IdempotentReplays(max_key_length=8)
    calls: list[int] = []

    def create() -> dict[str, int]:
        calls.append(1)
        return {"id": len(calls)}

    first, replayed_first = replays.answer("k", create, endpoint="POST /a", fingerprint=("x",))
    again, replayed_again = replays.answer("k", create, endpoint="POST /a", fingerprint=("x",))
    again["id"] = 99  # a caller changing its copy changes no later replay
    third, _ = replays.answer("k", create, endpoint="POST /a", fingerprint=("x",))
    unkeyed = [replays.answer(None, create)[0] for _ in range(2)]

    assert (first, replayed_first, replayed_again, third) == ({"id": 1}, False, True, {"id": 1})
    assert unkeyed == [{"id": 2}, {"id": 3}]  # no key: every call runs, nothing is saved
    assert len(replays) == 1


def test_keys_live_in_their_scope_and_a_failed_call_saves_nothing() -> None:
    replays: IdempotentReplays[str] = IdempotentReplays(max_key_length=8)

    def refuse() -> str:
        raise LookupError("no such intent")

    with pytest.raises(LookupError):
        replays.answer("k", refuse, scope="acct_1")
    assert replays.answer("k", lambda: "paid", scope="acct_1") == ("paid", False)
    assert replays.answer("k", lambda: "other", scope="acct_2") == ("other", False)
    assert replays.answer("k", lambda: "again", scope="acct_1") == ("paid", True)


def test_a_key_of_the_wrong_length_or_reused_elsewhere_is_a_conflict_naming_why() -> None:
    replays: IdempotentReplays[str] = IdempotentReplays(max_key_length=4)
    replays.answer("k", lambda: "ok", endpoint="POST /v1/refunds", fingerprint=(("a", "1"),))

    def conflict(key: str, endpoint: str, fingerprint: object) -> IdempotencyConflict:
        with pytest.raises(IdempotencyConflict) as refused:
            replays.answer(key, lambda: "no", endpoint=endpoint, fingerprint=fingerprint)
        return refused.value

    too_long = conflict("12345", "POST /v1/refunds", ())
    empty = conflict("", "POST /v1/refunds", ())
    elsewhere = conflict("k", "POST /v1/payment_intents", (("a", "1"),))
    other_parameters = conflict("k", "POST /v1/refunds", (("a", "2"),))

    assert too_long.reason == empty.reason == "key_length"
    assert (elsewhere.reason, elsewhere.first_endpoint) == ("other_endpoint", "POST /v1/refunds")
    assert other_parameters.reason == "other_parameters"


def test_replays_are_bounded_oldest_first_and_cleared_by_a_reset() -> None:
    replays: IdempotentReplays[int] = IdempotentReplays(max_key_length=8, limit=2)
    for key in ("k0", "k1", "k2"):
        replays.answer(key, lambda: 2)

    assert replays.answer("k0", lambda: 10) == (10, False)  # forgotten: runs again
    assert replays.answer("k2", lambda: 20) == (2, True)
    replays.clear()
    assert len(replays) == 0


def test_ownership_hides_another_tenant_s_objects_and_passes_down_to_children() -> None:
    owners = Ownership()
    owners.mark("pi_platform", None)
    owners.mark("pi_seller", "acct_1")

    assert owners.inherit("ch_seller", "pi_seller") == "acct_1"
    assert owners.inherit("ch_platform", "pi_platform") is None
    assert owners.visible("ch_seller", "acct_1") and not owners.visible("ch_seller", "acct_2")
    assert owners.visible("ch_platform", None) and not owners.visible("ch_seller", None)
    assert dict(owners) == {"pi_seller": "acct_1", "ch_seller": "acct_1"}
