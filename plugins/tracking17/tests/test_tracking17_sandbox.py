"""The sandbox speaks 17TRACK v2.2 on the wire, and its control endpoints do what the tests
and the dev deployment rely on."""

import json

import pytest
from pixecom_tracking17.sandbox import detect_carrier
from pixecom_tracking17.signatures import signature_matches
from tracking17_support import API_KEY, PUSH_KEY, SandboxHandle

from pixecom_core.testing.sandbox_kit import WebhookReceiver


async def test_register_answers_in_17tracks_envelope(sandbox: SandboxHandle) -> None:
    response = await sandbox.api(
        "register",
        [{"number": "RR700000001CN", "tag": "order-1"}, {"number": "12"}, {"carrier": 3011}],
    )

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0
    assert body["data"]["accepted"] == [
        {"origin": 1, "number": "RR700000001CN", "carrier": 3011, "tag": "order-1"}
    ]
    assert [(entry["number"], entry["error"]["code"]) for entry in body["data"]["rejected"]] == [
        ("12", -18010012),
        ("", -18010010),
    ]


async def test_gettrackinfo_carries_a_v22_track_info(sandbox: SandboxHandle) -> None:
    await sandbox.api("register", [{"number": "RR700000002CN", "tag": "order-2"}])
    await sandbox.advance("RR700000002CN")

    response = await sandbox.api("gettrackinfo", [{"number": "RR700000002CN", "carrier": 3011}])

    [item] = response.json()["data"]["accepted"]
    assert (item["number"], item["carrier"], item["tag"]) == ("RR700000002CN", 3011, "order-2")
    info = item["track_info"]
    assert info["latest_status"] == {
        "status": "InTransit",
        "sub_status": "InTransit_PickedUp",
        "sub_status_descr": None,
    }
    [provider] = info["tracking"]["providers"]
    assert provider["provider"]["key"] == 3011
    events = provider["events"]
    assert info["latest_event"] == events[0]
    assert [event["stage"] for event in events] == ["InTransit_PickedUp", "InfoReceived"]
    assert events[0]["time_utc"].endswith("Z")
    assert {"time_iso", "description", "location", "address"} <= set(events[0])
    assert {entry["key_stage"] for entry in info["milestone"]} >= {"InfoReceived", "Delivered"}


async def test_unknown_numbers_are_rejected_as_not_registered(sandbox: SandboxHandle) -> None:
    response = await sandbox.api("gettrackinfo", [{"number": "RR799999999CN"}])

    [rejected] = response.json()["data"]["rejected"]
    assert rejected["error"]["code"] == -18019902


async def test_a_missing_or_wrong_key_is_refused(sandbox: SandboxHandle) -> None:
    for key in (None, "wrong-key"):
        response = await sandbox.api("getquota", [], key=key)
        assert response.status_code == 401
        assert response.json()["code"] == -18010002
        assert response.json()["data"]["errors"][0]["code"] == -18010002


async def test_more_than_40_numbers_are_refused(sandbox: SandboxHandle) -> None:
    response = await sandbox.api("register", [{"number": f"RR7{i:08d}CN"} for i in range(41)])

    assert response.json()["code"] == -18010014
    assert (await sandbox.api("getquota", [])).json()["data"]["quota_used"] == 0


@pytest.mark.parametrize("body", [{"number": "RR700000003CN"}, "text", 7])
async def test_a_body_that_is_not_an_array_is_refused(sandbox: SandboxHandle, body: object) -> None:
    response = await sandbox.api("register", body)

    assert response.json()["code"] == -18010013


async def test_unknown_operations_and_versions_are_404(sandbox: SandboxHandle) -> None:
    assert (await sandbox.api("deletetrack", [])).status_code == 404
    response = await sandbox.control.post(
        "/track/v2.4/register", json=[], headers={"17token": API_KEY}
    )
    assert response.status_code == 404


async def test_the_rate_limit_answers_429_in_17tracks_envelope(sandbox: SandboxHandle) -> None:
    await sandbox.configure(rate_limit_per_second=2)

    statuses = [(await sandbox.api("getquota", [])).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    refused = await sandbox.api("getquota", [])
    assert refused.json()["code"] == 429
    assert "retry-after" not in refused.headers


async def test_retrack_is_allowed_once_for_a_stopped_number(sandbox: SandboxHandle) -> None:
    await sandbox.api("register", [{"number": "RR700000004CN"}])

    def code_of(response_json: dict[str, object]) -> object:
        data = response_json["data"]
        assert isinstance(data, dict)
        return data["rejected"][0]["error"]["code"] if data["rejected"] else 0

    codes = []
    for operation in ("retrack", "stoptrack", "stoptrack", "retrack", "stoptrack", "retrack"):
        response = await sandbox.api(operation, [{"number": "RR700000004CN"}])
        codes.append(code_of(response.json()))

    assert codes == [-18019904, 0, -18019906, 0, 0, -18019905]


async def test_getquota_counts_registrations(sandbox: SandboxHandle) -> None:
    await sandbox.configure(quota_total=5)
    await sandbox.api("register", [{"number": "RR700000005CN"}, {"number": "RR700000006CN"}])

    quota = (await sandbox.api("getquota", [])).json()["data"]

    assert (quota["quota_total"], quota["quota_used"], quota["quota_remain"]) == (5, 2, 3)


async def test_a_status_can_be_set_and_advancing_resumes_the_progression(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.api("register", [{"number": "RR700000007CN"}])

    held = await sandbox.set_status("RR700000007CN", "Exception", sub_status="Exception_Delayed")
    resumed = await sandbox.advance("RR700000007CN")

    assert (held["status"], held["sub_status"]) == ("Exception", "Exception_Delayed")
    assert resumed["status"] == "InTransit"
    assert (await sandbox.control.post("/_sandbox/parcels/NOPE1/advance")).status_code == 404


async def test_pushes_are_signed_over_the_raw_body(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.api("register", [{"number": "RR700000008CN", "tag": "order-8"}])

    [delivery] = await sandbox.push(numbers=["RR700000008CN"])

    assert delivery["status_code"] == 200
    [push] = push_receiver.received
    assert push.headers["content-type"] == "application/json"
    assert signature_matches(push.body, PUSH_KEY, push.headers["sign"])
    payload = json.loads(push.body)
    assert payload["event"] == "TRACKING_UPDATED"
    assert payload["data"]["number"] == "RR700000008CN"
    assert payload["data"]["tag"] == "order-8"
    assert payload["data"]["track_info"]["latest_status"]["status"] == "InfoReceived"


async def test_every_push_attempt_is_listed_and_bad_signing_options_send_nothing(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.api("register", [{"number": "RR700000012CN"}])
    push_receiver.status_code = 503
    await sandbox.push(numbers=["RR700000012CN"])
    push_receiver.status_code = 200
    await sandbox.push(numbers=["RR700000012CN"])
    refused = await sandbox.control.post("/_sandbox/deliver", json={"signing": {"key": ""}})

    attempts = (await sandbox.control.get("/_sandbox/deliveries")).json()
    [event] = (await sandbox.control.get("/_sandbox/events")).json()["data"]
    shown = await sandbox.control.get(f"/_sandbox/events/{event['id']}")

    assert [(a["scope"], a["status_code"]) for a in attempts] == [
        ("RR700000012CN", 503),
        ("RR700000012CN", 200),
    ]
    assert refused.status_code == 422
    assert len(push_receiver.received) == 2
    assert event["id"].startswith("RR700000012CN@")  # one event per number and state
    assert shown.content == push_receiver.received[-1].body


async def test_tick_pushes_each_change_once(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.api("register", [{"number": "RR700000009CN"}, {"number": "RR700000010CN"}])

    first = (await sandbox.control.post("/_sandbox/tick")).json()["deliveries"]
    again = (await sandbox.control.post("/_sandbox/tick")).json()["deliveries"]
    await sandbox.advance("RR700000010CN")
    after_change = (await sandbox.control.post("/_sandbox/tick")).json()["deliveries"]

    assert sorted(d["number"] for d in first) == ["RR700000009CN", "RR700000010CN"]
    assert again == []
    assert [d["number"] for d in after_change] == ["RR700000010CN"]
    assert len(push_receiver.received) == 3


async def test_a_push_the_api_refused_is_pushed_again(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.api("register", [{"number": "RR700000011CN"}])
    push_receiver.status_code = 503

    refused = (await sandbox.control.post("/_sandbox/tick")).json()["deliveries"]
    push_receiver.status_code = 200
    retried = (await sandbox.control.post("/_sandbox/tick")).json()["deliveries"]

    assert [d["status_code"] for d in refused] == [503]
    assert [d["status_code"] for d in retried] == [200]


async def test_an_undelivered_push_stays_pending_until_redelivered(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.api("register", [{"number": "RR700000014CN"}])
    push_receiver.status_code = 503
    await sandbox.push(numbers=["RR700000014CN"])
    push_receiver.status_code = 200

    [pending] = (await sandbox.control.get("/_sandbox/events?pending_only=true")).json()["data"]
    redelivered = await sandbox.control.post(
        "/_sandbox/deliver", json={"signing": {"key": "another-key"}}
    )

    assert (pending["scope"], pending["type"]) == ("RR700000014CN", "TRACKING_UPDATED")
    assert [d["status_code"] for d in redelivered.json()["deliveries"]] == [200]
    assert signature_matches(
        push_receiver.received[-1].body, "another-key", push_receiver.received[-1].headers["sign"]
    )
    assert (await sandbox.parcel("RR700000014CN"))["pushed"] is True


async def test_auto_push_delivers_changes_and_stops(
    sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await sandbox.configure(auto_push=True)
    await sandbox.api("register", [{"number": "RR700000012CN"}])

    advanced = await sandbox.advance("RR700000012CN")
    await sandbox.api("stoptrack", [{"number": "RR700000012CN"}])

    assert [d["status_code"] for d in advanced["deliveries"]] == [200]
    events = [json.loads(push.body)["event"] for push in push_receiver.received]
    assert events == ["TRACKING_UPDATED", "TRACKING_STOPPED"]


async def test_a_push_to_nowhere_is_reported_not_raised(sandbox: SandboxHandle) -> None:
    await sandbox.api("register", [{"number": "RR700000013CN"}])

    [delivery] = await sandbox.push(numbers=["RR700000013CN"], url="http://127.0.0.1:9/none")

    assert delivery["error"]
    assert (
        await sandbox.control.post("/_sandbox/push", json={"numbers": ["NOPE1"]})
    ).status_code == 404
    await sandbox.configure(push_url=None)
    assert (await sandbox.control.post("/_sandbox/tick")).status_code == 409


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        ("1Z999AA10123456784", 100002),
        ("RR123456789CN", 3011),
        ("AB123456789GB", 11031),
        ("94001118992233975411", 21051),
        ("123456789012", 100003),
        ("1234567890", 100001),
        ("LP00123456789", 190271),
        ("XX12345678", None),
    ],
)
def test_carrier_detection(number: str, carrier: int | None) -> None:
    assert detect_carrier(number) == carrier
