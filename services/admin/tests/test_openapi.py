"""The served OpenAPI document says what the API does: the fields a create refuses to go
without are required, list queries are documented, and every operation lists its error
answers with the error body's schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _request_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    name = ref["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


@pytest.mark.parametrize(
    ("collection", "required"),
    [
        ("registries", {"name"}),
        ("consumers", {"name"}),
        ("auths", {"name", "type"}),
        ("policies", {"name", "slug"}),
        ("roles", {"name"}),
    ],
)
def test_what_a_create_needs_is_required_in_the_schema(
    document: dict[str, Any], collection: str, required: set[str]
) -> None:
    schema = _request_schema(document, f"/v1/gateways/{{gateway_id}}/{collection}", "post")
    assert required <= set(schema.get("required", [])), schema.get("required")


@pytest.mark.parametrize("collection", ["registries", "consumers", "auths", "policies", "roles"])
async def test_a_create_without_a_required_field_is_refused_naming_it(
    api: httpx.AsyncClient, collection: str
) -> None:
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    r = await api.post(f"/v1/gateways/{gw}/{collection}", json={})
    assert r.status_code == 422
    assert "name" in r.json()["message"]


def test_every_operation_documents_its_error_answers(document: dict[str, Any]) -> None:
    assert "ErrorBody" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            answers = op["responses"]
            if path.startswith("/v1/"):
                expected = {"401", "422"}
                if path.startswith("/v1/gateways"):
                    expected.add("503")  # the catalogs are served from memory
                if "{" in path:
                    expected |= {"400", "404"}
                if method in ("post", "put", "delete") and "{" in path:
                    expected.add("409")
                missing = expected - set(answers)
                assert not missing, f"{method.upper()} {path} lacks {sorted(missing)}"
            for status, answer in answers.items():
                if path.startswith("/v1/") and status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_list_queries_are_documented(document: dict[str, Any]) -> None:
    listing = document["paths"]["/v1/gateways"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"page", "size", "sort", "order", "search", "slug"} <= names


def test_posts_document_the_idempotency_key(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/gateways"]["post"]
    names = {p["name"] for p in create.get("parameters", [])}
    assert "Idempotency-Key" in names


def test_entity_and_list_answers_are_documented(document: dict[str, Any]) -> None:
    def schema(path: str, method: str, status: str) -> Any:
        answer = document["paths"][path][method]["responses"][status]
        return answer["content"]["application/json"]["schema"]

    assert schema("/v1/gateways", "get", "200") == {"$ref": "#/components/schemas/Page"}
    assert schema("/v1/gateways", "post", "201") == {"$ref": "#/components/schemas/Resource"}
    resource = document["components"]["schemas"]["Resource"]
    assert {"id", "created_at", "updated_at"} <= set(resource["required"])
