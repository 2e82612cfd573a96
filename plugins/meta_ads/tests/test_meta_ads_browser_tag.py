"""The Meta pixel in the browser (issue 17 item 4): the tag the ``meta`` network gives
sellpages, and the sandbox's stand-in for Meta's library and pixel endpoint.

The tag is checked as text (it is what the page runs); the sandbox over real HTTP on
loopback. The plugin's test environment has no browser, so the stand-in script is checked
as text too: that it takes over the base code's queue and sends each event to the ``/tr/``
route of the sandbox that served it, with the parameters the route records.
"""

import re
from urllib.parse import urlencode

import pytest
from meta_ads_support import SandboxHandle
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.browser_tag import PURCHASE_JS
from pixecom_meta_ads.sandbox_pixel import PIXEL_GIF, stand_in_script
from pixecom_meta_ads.settings import PIXEL_SCRIPT_URL, MetaAdsSettings
from pydantic import ValidationError

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import ConversionsDestination

PIXEL = "555000111222333"
ORDER_ID = "0b6f3c52-4a1e-4f7e-9a43-5d6b2f0f8e11"
PAGE = "http://127.0.0.1:8000/s/summer-sale?utm_source=fb"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PIXECOM_META_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def network() -> MetaAdNetwork:
    """The network built from the environment, as the plugin hook builds it."""
    built = MetaAdNetwork(MetaAdsSettings())
    await built.aclose()  # browser_tag makes no call; no connection stays open
    return built


# -- the tag ----------------------------------------------------------------------------------


async def test_the_tag_loads_meta_s_library_and_starts_the_pixel(network: MetaAdNetwork) -> None:
    assert isinstance(network, ConversionsDestination)

    tag = network.browser_tag(PIXEL)

    assert tag is not None
    assert tag.script_url == PIXEL_SCRIPT_URL == "https://connect.facebook.net/en_US/fbevents.js"
    # Meta's base code: the queue stub (a no-op when fbq exists) that loads the library
    assert "{if(f.fbq)return;n=f.fbq=function(){n.callMethod?" in tag.init_js
    assert "n.callMethod.apply(n,arguments):n.queue.push(arguments)};" in tag.init_js
    assert "}(window, document,'script',\n\"https://connect.facebook.net/en_US/fbevents.js\");" in (
        tag.init_js
    )
    assert tag.init_js.count(PIXEL) == 1
    assert tag.init_js.endswith(f"fbq('init', '{PIXEL}');\nfbq('track', 'PageView');\n")


async def test_the_script_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_META_PIXEL_SCRIPT_URL", "http://127.0.0.1:4030/en_US/fbevents.js")
    network = MetaAdNetwork(MetaAdsSettings())
    await network.aclose()

    tag = network.browser_tag(PIXEL)

    assert tag is not None
    assert tag.script_url == "http://127.0.0.1:4030/en_US/fbevents.js"
    assert '"http://127.0.0.1:4030/en_US/fbevents.js");' in tag.init_js
    assert "connect.facebook.net" not in tag.init_js


async def test_the_purchase_carries_the_order_id_as_event_id(network: MetaAdNetwork) -> None:
    tag = network.browser_tag(PIXEL)

    assert tag is not None
    # Meta: "the eventID parameter for the Pixel is the 4th argument in the fbq track call"
    assert tag.purchase_js == PURCHASE_JS
    assert (
        "window.fbq('track', 'Purchase', {value: Number(value), currency: String(currency)},\n"
        "    {eventID: String(orderId)});"
    ) in tag.purchase_js
    # the page's variables, nothing pasted in: the same code for every pixel
    other = network.browser_tag("1")
    assert other is not None and other.purchase_js == tag.purchase_js


@pytest.mark.parametrize(
    "destination_id",
    [
        "",
        "act_1000",
        "12ab",
        " 555000111222333",
        "555000111222333\n",
        "1" * 33,
        "١٢٣",  # digits, but not ASCII ones
        "1'); alert(document.cookie); ('",
        "1');fbq('init','2",
        '1"</script><script>alert(1)</script>',
    ],
)
async def test_no_tag_for_anything_but_a_numeric_pixel_id(
    network: MetaAdNetwork, destination_id: str
) -> None:
    assert network.browser_tag(destination_id) is None


async def test_the_script_url_cannot_close_the_page_s_script_element() -> None:
    network = MetaAdNetwork(
        MetaAdsSettings(pixel_script_url="https://cdn.example/</script><img src=x>&.js")
    )
    await network.aclose()

    tag = network.browser_tag(PIXEL)

    assert tag is not None
    assert "<" not in tag.init_js and ">" not in tag.init_js and "&" not in tag.init_js
    assert '"https://cdn.example/\\u003c/script\\u003e\\u003cimg src=x\\u003e\\u0026.js"' in (
        tag.init_js
    )


@pytest.mark.parametrize(
    "value",
    [
        "connect.facebook.net/en_US/fbevents.js",
        "ftp://cdn.example/fbevents.js",
        "https://x/a.js?v=1",
    ],
)
def test_an_unusable_script_url_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PIXECOM_META_PIXEL_SCRIPT_URL", value)

    with pytest.raises(ValidationError, match="pixel_script_url"):
        MetaAdsSettings()


def test_dev_mode_loads_the_library_from_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = ProviderRegistry(create_plugin_manager(allow={"meta_ads"})).sandbox("meta")
    assert sandbox.environment is not None
    environment = sandbox.environment("http://127.0.0.1:4030", "unused")

    assert environment["PIXECOM_META_PIXEL_SCRIPT_URL"] == (
        "http://127.0.0.1:4030/en_US/fbevents.js"
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert MetaAdsSettings().pixel_script_url == "http://127.0.0.1:4030/en_US/fbevents.js"


# -- the sandbox's library --------------------------------------------------------------------


async def test_the_sandbox_serves_its_library_where_meta_does(sandbox: SandboxHandle) -> None:
    response = await sandbox.control.get("/en_US/fbevents.js")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.text == stand_in_script()


def test_the_stand_in_takes_over_the_base_code_s_queue() -> None:
    script = stand_in_script()

    # without the stub it does what Meta's does: say so and stop
    assert "if (!fbq) {" in script
    assert "Pixel code is not installed correctly on this page" in script
    # with it: later calls go to callMethod, queued ones are replayed
    assert "fbq.callMethod = function () {" in script
    assert "var queued = fbq.queue || [];" in script
    assert 'if (method === "init") {' in script
    assert 'method === "track" || method === "trackCustom"' in script


def test_the_stand_in_reports_to_the_sandbox_that_served_it() -> None:
    script = stand_in_script()

    assert 'new URL(script && script.src ? script.src : "/", window.location.href).origin' in (
        script
    )
    assert "var script = document.currentScript;" in script
    assert 'new Image().src = origin + "/tr/?" + query.toString();' in script
    # exactly the parameters the /tr/ route reads, under the names it reads them
    sent = set(re.findall(r'query\.set\("([a-z]+)"', script))
    assert sent == {"id", "ev", "eid", "dl", "rl", "ts"}
    assert 'query.set("cd[" + key + "]", String(value));' in script
    assert 'query.set("eid", String(options.eventID));' in script  # the 4th argument


# -- the sandbox's pixel endpoint -------------------------------------------------------------


def beacon(**params: str) -> str:
    return "/tr/?" + urlencode(params)


async def browser_events(sandbox: SandboxHandle, pixel: str = PIXEL) -> list[dict[str, object]]:
    response = await sandbox.control.get(f"/_sandbox/pixels/{pixel}/browser-events")
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()
    return events


async def test_a_purchase_beacon_is_recorded_and_answered_with_a_gif(
    sandbox: SandboxHandle,
) -> None:
    query = {
        "id": PIXEL,
        "ev": "Purchase",
        "eid": ORDER_ID,
        "cd[value]": "12.5",
        "cd[currency]": "USD",
        "dl": PAGE,
        "ts": "1780000000000",
    }

    response = await sandbox.control.get(beacon(**query))

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL_GIF and response.content.startswith(b"GIF89a")
    assert await browser_events(sandbox) == [
        {"event": "Purchase", "event_id": ORDER_ID, "value": 12.5, "currency": "USD", "url": PAGE}
    ]


async def test_page_views_are_recorded_in_order_on_both_paths(sandbox: SandboxHandle) -> None:
    await sandbox.control.get(beacon(id=PIXEL, ev="PageView", dl=PAGE))
    await sandbox.control.get("/tr?" + urlencode({"id": PIXEL, "ev": "PageView"}))  # noscript

    assert await browser_events(sandbox) == [
        {"event": "PageView", "event_id": None, "value": None, "currency": None, "url": PAGE},
        {"event": "PageView", "event_id": None, "value": None, "currency": None, "url": None},
    ]


async def test_each_pixel_has_its_own_events_and_unknown_pixels_are_recorded(
    sandbox: SandboxHandle,
) -> None:
    # Meta's endpoint answers its gif for any pixel id; the sandbox records it all the same
    never_registered = "999888777666555"

    response = await sandbox.control.get(beacon(id=never_registered, ev="PageView"))

    assert response.status_code == 200
    assert [event["event"] for event in await browser_events(sandbox, never_registered)] == [
        "PageView"
    ]
    assert await browser_events(sandbox) == []


@pytest.mark.parametrize(
    "query",
    [
        {"ev": "PageView"},
        {"id": "act_1000", "ev": "PageView"},
        {"id": "1" * 33, "ev": "PageView"},
        {"id": PIXEL},
        {"id": PIXEL, "ev": ""},
        {"id": PIXEL, "ev": "E" * 101},
        {"id": PIXEL, "ev": "Purchase", "cd[value]": "12,50"},
        {"id": PIXEL, "ev": "Purchase", "cd[value]": "NaN"},
        {"id": PIXEL, "ev": "Purchase", "cd[currency]": "DOLLARS!!"},
        {"id": PIXEL, "ev": "Purchase", "eid": "x" * 201},
    ],
)
async def test_what_is_not_a_pixel_event_is_refused_and_not_recorded(
    sandbox: SandboxHandle, query: dict[str, str]
) -> None:
    response = await sandbox.control.get(beacon(**query))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert await browser_events(sandbox) == []


async def test_a_reset_forgets_browser_events(sandbox: SandboxHandle) -> None:
    await sandbox.control.get(beacon(id=PIXEL, ev="PageView"))
    assert len(await browser_events(sandbox)) == 1

    (await sandbox.control.post("/_sandbox/reset")).raise_for_status()

    assert await browser_events(sandbox) == []


async def test_beacons_are_in_the_request_log(sandbox: SandboxHandle) -> None:
    await sandbox.control.get("/en_US/fbevents.js")
    await sandbox.control.get(beacon(id=PIXEL, ev="Purchase", eid=ORDER_ID))

    logged = (await sandbox.control.get("/_sandbox/requests")).json()

    operations = [(entry["operation"], entry.get("scope")) for entry in logged]
    assert operations[-2:] == [("pixel_script", None), ("pixel_event", PIXEL)]
    assert logged[-1]["params"] == {"eid": ORDER_ID, "ev": "Purchase", "id": PIXEL}


# -- faults -----------------------------------------------------------------------------------


async def test_a_transport_fault_aimed_at_the_beacon_answers_it(sandbox: SandboxHandle) -> None:
    fault = {"kind": "server_error", "operation": "pixel_event", "scope": PIXEL}
    assert (await sandbox.control.post("/_sandbox/faults", json=fault)).status_code < 300

    failed = await sandbox.control.get(beacon(id=PIXEL, ev="Purchase", eid=ORDER_ID))
    again = await sandbox.control.get(beacon(id=PIXEL, ev="Purchase", eid=ORDER_ID))

    assert failed.status_code == 502
    assert again.status_code == 200
    assert [event["event_id"] for event in await browser_events(sandbox)] == [ORDER_ID]


async def test_a_transport_fault_aimed_at_the_library_answers_it(sandbox: SandboxHandle) -> None:
    fault = {"kind": "malformed", "operation": "pixel_script"}
    assert (await sandbox.control.post("/_sandbox/faults", json=fault)).status_code < 300

    failed = await sandbox.control.get("/en_US/fbevents.js")

    assert failed.text != stand_in_script()
    assert (await sandbox.control.get("/en_US/fbevents.js")).text == stand_in_script()


async def test_faults_without_an_operation_are_left_to_graph_calls(sandbox: SandboxHandle) -> None:
    assert (
        await sandbox.control.post("/_sandbox/faults", json={"kind": "server_error"})
    ).status_code < 300

    response = await sandbox.control.get(beacon(id=PIXEL, ev="PageView"))

    assert response.status_code == 200
    assert len((await sandbox.control.get("/_sandbox/faults")).json()) == 1


@pytest.mark.parametrize("operation", ["pixel_event", "pixel_script"])
async def test_graph_errors_cannot_be_aimed_at_the_browser(
    sandbox: SandboxHandle, operation: str
) -> None:
    response = await sandbox.control.post(
        "/_sandbox/faults", json={"kind": "throttled", "operation": operation}
    )

    assert response.status_code == 422
    assert "transport faults" in response.text
