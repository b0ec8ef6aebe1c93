"""Alert rules through the API: created, read, listed, changed and deleted per gateway;
every invalid rule is a 422 naming its field; a channel's URL and secret are sealed at rest
and masked in every answer (a PUT sending the mask back keeps them); another tenant's
gateway is a 404."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_admin.governance.alert_channels import opened
from trustgate_admin.governance.chain import verify_database
from trustgate_testkit.admin import RunningAdmin

SLACK_URL = "https://hooks.slack.com/services/T000/B000/slack-secret-0001"
HOOK_URL = "https://alerts.example.com/hook/hook-path-0002"
HOOK_SECRET = "hmac-secret-0003-abcdefgh"


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"gw-{uuid.uuid4().hex[:10]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _consumer(api: httpx.AsyncClient, gw: str) -> str:
    r = await api.post(f"/v1/gateways/{gw}/consumers", json={"name": f"c-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _policy(api: httpx.AsyncClient, gw: str, slug: str, settings: dict[str, Any]) -> str:
    body = {"name": f"p-{uuid.uuid4().hex[:6]}", "slug": slug, "settings": settings}
    r = await api.post(f"/v1/gateways/{gw}/policies", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _spend(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"a-{uuid.uuid4().hex[:6]}",
        "kind": "spend",
        "amount_usd": 100,
        "period": "month",
        "channel": {"type": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET},
        **extra,
    }


def _leaks(text: str) -> bool:
    return any(s in text for s in (SLACK_URL, HOOK_URL, HOOK_SECRET))


async def test_a_spend_rule_is_created_read_listed_changed_and_deleted(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    r = await api.post(base, json=_spend(name="monthly"))
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["kind"] == "spend" and rule["amount_usd"] == 100 and rule["period"] == "month"
    assert rule["thresholds"] == [50, 80, 100] and rule["enabled"] is True
    assert rule["consumer_id"] is None

    assert (await api.get(f"{base}/{rule['id']}")).json() == rule
    page = (await api.get(base)).json()
    assert page["total"] == 1 and page["items"] == [rule]
    assert (await api.post(base, json=_spend(name="monthly"))).status_code == 409

    r = await api.put(
        f"{base}/{rule['id']}", json={"amount_usd": 250.5, "thresholds": [90, 75], "enabled": False}
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["amount_usd"] == 250.5 and changed["thresholds"] == [75, 90]
    assert changed["enabled"] is False and changed["name"] == "monthly"
    assert (await api.get(base, params={"enabled": "false"})).json()["total"] == 1

    for bad, field in (({"amount_usd": -1}, "amount_usd"), ({"thresholds": [5, 5]}, "thresholds")):
        r = await api.put(f"{base}/{rule['id']}", json=bad)
        assert r.status_code == 422 and field in r.json()["message"], r.text
    r = await api.put(f"{base}/{rule['id']}", json={"kind": "budget"})
    assert r.status_code == 422 and "policy_id" in r.json()["message"], r.text

    r = await api.put(f"{base}/{rule['id']}", json={"kind": "anomaly"})
    assert r.status_code == 200, r.text
    anomaly = r.json()
    assert anomaly["kind"] == "anomaly" and "amount_usd" not in anomaly
    assert (anomaly["factor"], anomaly["baseline_hours"], anomaly["min_spend_usd"]) == (3, 24, 1)

    assert (await api.delete(f"{base}/{rule['id']}")).status_code == 204
    assert (await api.get(f"{base}/{rule['id']}")).status_code == 404
    assert (await api.delete(f"{base}/{rule['id']}")).status_code == 404


async def test_channel_url_and_secret_are_sealed_at_rest_and_masked_in_every_answer(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    hook = (await api.post(base, json=_spend())).json()
    assert hook["channel"] == {"type": "webhook", "url": "***0002", "secret": "***efgh"}
    slack_body = _spend(channel={"type": "slack", "url": SLACK_URL})
    r = await api.post(base, json=slack_body)
    assert r.json()["channel"] == {"type": "slack", "url": "***0001"}
    answers = [r.text, (await api.get(base)).text, (await api.get(f"{base}/{hook['id']}")).text]
    assert not any(_leaks(text) for text in answers)

    # the mask sent back keeps the stored URL and secret
    r = await api.put(f"{base}/{hook['id']}", json={"name": "renamed", "channel": hook["channel"]})
    assert r.status_code == 200, r.text
    assert not _leaks(r.text)
    conn = await asyncpg.connect(admin.settings.dsn)
    try:
        stored = await conn.fetchval(
            "SELECT channel::text FROM alert_rules WHERE id = $1", uuid.UUID(hook["id"])
        )
    finally:
        await conn.close()
    assert not _leaks(stored) and "tgs1:" in stored
    channel = opened(admin.container.box, json.loads(stored))
    assert channel == {"type": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET}

    # a mask cannot be stored as a new channel's value
    r = await api.put(f"{base}/{hook['id']}", json={"channel": {"type": "slack", "url": "***0002"}})
    assert r.status_code == 422 and "masked" in r.json()["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_usd": None}, "amount_usd"),
        ({"amount_usd": 0}, "amount_usd"),
        ({"amount_usd": -5}, "amount_usd"),
        ({"period": "week"}, "period"),
        ({"period": None}, "period"),
        ({"thresholds": [0, 50]}, "thresholds"),
        ({"thresholds": [50, 1001]}, "thresholds"),
        ({"thresholds": [80, 80]}, "thresholds"),
        ({"thresholds": []}, "thresholds"),
        ({"factor": 2}, "factor"),
        ({"policy_id": str(uuid.uuid4())}, "policy_id"),
        ({"kind": "forecast"}, "kind"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
        (
            {
                "channel": {
                    "type": "webhook",
                    "url": "http://alerts.example.com/x",
                    "secret": HOOK_SECRET,
                }
            },
            "url",
        ),
        ({"channel": {"type": "slack", "url": "ftp://hooks.example.com/x"}}, "url"),
        ({"channel": {"type": "slack", "url": "https://user:pw@hooks.example.com/x"}}, "url"),
        ({"channel": {"type": "webhook", "url": HOOK_URL}}, "secret"),
        ({"channel": {"type": "webhook", "url": HOOK_URL, "secret": "short"}}, "secret"),
        ({"channel": {"type": "slack", "url": "***0001"}}, "url"),
        ({"channel": {"type": "email", "url": HOOK_URL}}, "channel"),
        ({"consumer_id": str(uuid.uuid4())}, "consumer_id"),
    ],
)
async def test_an_invalid_spend_rule_is_a_422_naming_its_field(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    gw = await _gateway(api)
    body = {k: v for k, v in {**_spend(), **change}.items() if v is not None}
    r = await api.post(f"/v1/gateways/{gw}/alerts", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] and field in r.json()["message"], r.text
    assert not _leaks(r.text)


async def test_anomaly_rules_take_no_thresholds_and_factor_above_one(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    anomaly = {"name": "spike", "kind": "anomaly", "channel": {"type": "slack", "url": SLACK_URL}}
    for bad in ({"thresholds": [50]}, {"factor": 1}, {"baseline_hours": 0}, {"amount_usd": 5}):
        r = await api.post(base, json={**anomaly, **bad})
        assert r.status_code == 422, (bad, r.text)
    r = await api.post(base, json={**anomaly, "factor": 2.5, "min_spend_usd": 0.5})
    assert r.status_code == 201, r.text
    assert "thresholds" not in r.json() and r.json()["factor"] == 2.5


async def test_http_is_allowed_to_loopback_and_private_receivers_only(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    for url in ("http://127.0.0.1:9000/hook", "http://10.1.2.3/hook", "http://localhost/x"):
        r = await api.post(base, json=_spend(channel={"type": "slack", "url": url}))
        assert r.status_code == 201, (url, r.text)
    for url in ("http://8.8.8.8/hook", "http://hooks.example.com/x"):
        r = await api.post(base, json=_spend(channel={"type": "slack", "url": url}))
        assert r.status_code == 422, (url, r.text)
        assert "https" in r.json()["message"]


async def test_a_consumer_rule_names_a_consumer_of_the_same_gateway(api: httpx.AsyncClient) -> None:
    gw, other = await _gateway(api), await _gateway(api)
    own = await _consumer(api, gw)
    foreign = await _consumer(api, other)
    base = f"/v1/gateways/{gw}/alerts"
    r = await api.post(base, json=_spend(consumer_id=foreign))
    assert r.status_code == 422 and "consumer_id" in r.json()["message"]
    r = await api.post(base, json=_spend(consumer_id=own))
    assert r.status_code == 201 and r.json()["consumer_id"] == own
    assert (await api.get(base, params={"consumer_id": own})).json()["total"] == 1


async def test_a_budget_rule_needs_a_measurable_token_rate_limiter(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    consumer = await _consumer(api, gw)

    def budget(policy_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": f"b-{uuid.uuid4().hex[:6]}",
            "kind": "budget",
            "policy_id": policy_id,
            "channel": {"type": "slack", "url": SLACK_URL},
            **extra,
        }

    def limiter(window: str, **extra: Any) -> dict[str, Any]:
        return {"unit": "tokens", "aggregate": {"max": 1000, "time_window": window}, **extra}

    cases = {
        "shorter than an hour": limiter("30m"),
        "not a whole number of hours": limiter("90m"),
        "per header": limiter("1h", group_by_header="x-team"),
        "no aggregate": {
            "unit": "tokens",
            "rules": [{"model": "*", "max": 10, "time_window": "1h"}],
        },
        "one side of a dollar cost": {
            "unit": "dollars",
            "counting": "input",
            "aggregate": {"max": 5, "time_window": "24h"},
        },
    }
    for why, settings in cases.items():
        policy = await _policy(api, gw, "token_rate_limiter", settings)
        assert (await api.post(f"/v1/gateways/{gw}/policies/{policy}/global")).status_code == 200
        r = await api.post(base, json=budget(policy))
        assert r.status_code == 422, (why, r.text)
        assert "policy_id" in r.json()["message"], (why, r.text)
        if "hour" in why:
            assert "hour" in r.json()["message"], r.text

    other = await _policy(api, gw, "rate_limiter", {"limit": 5, "window": "1m"})
    r = await api.post(base, json=budget(other))
    assert (
        r.status_code == 422
        and "a rate_limiter policy, not a token_rate_limiter" in r.json()["message"]
    ), r.text

    per_consumer = await _policy(api, gw, "token_rate_limiter", limiter("24h"))
    r = await api.post(base, json=budget(per_consumer))
    assert r.status_code == 422 and "consumer_id" in r.json()["message"], r.text
    r = await api.post(base, json=budget(per_consumer, consumer_id=consumer))
    assert r.status_code == 422 and "not attached" in r.json()["message"], r.text
    link = f"/v1/gateways/{gw}/consumers/{consumer}/policies/{per_consumer}"
    assert (await api.post(link)).status_code == 204
    r = await api.post(base, json=budget(per_consumer, consumer_id=consumer))
    assert r.status_code == 201, r.text
    assert r.json()["policy_id"] == per_consumer and r.json()["thresholds"] == [50, 80, 100]


async def test_another_tenants_gateway_alerts_are_a_404(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    token = mint_admin_token(
        admin.settings.server_secret_key, tenant_id=f"t-{uuid.uuid4().hex[:6]}"
    )
    gw = await _gateway(api)  # a platform gateway: no tenant
    rule = (await api.post(f"/v1/gateways/{gw}/alerts", json=_spend())).json()
    async with admin.client(token) as tenant:
        for r in (
            await tenant.get(f"/v1/gateways/{gw}/alerts"),
            await tenant.get(f"/v1/gateways/{gw}/alerts/{rule['id']}"),
            await tenant.post(f"/v1/gateways/{gw}/alerts", json=_spend()),
            await tenant.get(f"/v1/gateways/{gw}/alert-deliveries"),
            await tenant.get(f"/v1/gateways/{gw}/alerts/{rule['id']}/deliveries"),
        ):
            assert r.status_code == 404, r.text


async def test_rule_changes_are_in_the_audit_chain_without_their_channel(
    admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    rule = (await api.post(base, json=_spend())).json()
    assert (await api.put(f"{base}/{rule['id']}", json={"amount_usd": 50})).status_code == 200
    assert (await api.delete(f"{base}/{rule['id']}")).status_code == 204

    r = await api.get("/v1/audit", params={"entity_id": rule["id"], "sort": "seq", "order": "asc"})
    entries = r.json()["items"]
    assert [(e["kind"], e["operation"]) for e in entries] == [
        ("alert_rule", "create"),
        ("alert_rule", "update"),
        ("alert_rule", "delete"),
    ]
    assert {e["actor"] for e in entries} == {"admin"} and not _leaks(r.text)
    verdict = await verify_database(admin.settings.dsn)
    assert verdict.ok, verdict


async def test_a_budget_rule_its_policy_no_longer_lets_the_ledger_measure_says_inactive(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/alerts"
    limiter = {"unit": "tokens", "aggregate": {"max": 1000, "time_window": "24h"}}
    policy = await _policy(api, gw, "token_rate_limiter", limiter)
    policies = f"/v1/gateways/{gw}/policies/{policy}"
    assert (await api.post(f"{policies}/global")).status_code == 200
    body = {
        "name": "tokens",
        "kind": "budget",
        "policy_id": policy,
        "channel": {"type": "slack", "url": SLACK_URL},
    }
    rule = await api.post(base, json=body)
    assert rule.status_code == 201, rule.text
    assert (rule.json()["status"], rule.json()["reason"]) == ("active", None)
    url = f"{base}/{rule.json()['id']}"

    # the policy now keeps its budget per header: the ledger cannot measure that
    per_header = {**limiter, "group_by_header": "x-team"}
    r = await api.put(policies, json={"settings": per_header})
    assert r.status_code == 200, r.text
    got = (await api.get(url)).json()
    assert got["status"] == "inactive" and "group_by_header" in got["reason"], got
    (listed,) = (await api.get(base)).json()["items"]
    assert (listed["status"], listed["reason"]) == (got["status"], got["reason"])

    # measurable again, then no longer global while the rule names no consumer
    assert (await api.put(policies, json={"settings": limiter})).status_code == 200
    assert (await api.get(url)).json()["status"] == "active"
    assert (await api.delete(f"{policies}/global")).status_code == 200
    got = (await api.get(url)).json()
    assert got["status"] == "inactive" and "no longer global" in got["reason"], got

    # a spend rule is active, and says disabled once switched off
    spend = (await api.post(base, json=_spend())).json()
    assert (spend["status"], spend["reason"]) == ("active", None)
    r = await api.put(f"{base}/{spend['id']}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["status"] == "disabled", r.text
