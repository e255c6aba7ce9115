"""Drive the sandbox's batch update and create, merges of companies, the 250-merge cap and batch
reads of merged-away ids with HubSpot's official Python client (`hubspot-api-client`), unchanged.
Run by tests/sandbox_official_client.rs against a fresh sandbox seeded as for check.py (contacts
1001..1230, email personN@example.com for id 1000+N; companies 501..503).

Usage: python3 tests/official_client/check_mergefast.py URL TOKEN
"""

import json
import sys

from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
)
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.companies import PublicMergeInput as CompanyMergeInput

MAX_MERGES = 250


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def refused(call, status, what):
    try:
        call()
    except (ApiException, CompaniesApiException) as e:
        check(e.status == status, f"{what}: {status} (got {e.status})")
        return json.loads(e.body)
    raise AssertionError(f"{what}: not refused")


def city(contacts, cid):
    return contacts.basic_api.get_by_id(cid, properties=["city"]).properties.get("city")


def main(url, token):
    client = HubSpot(access_token=token, host=url)
    contacts = client.crm.contacts

    # Batch update: both applied, 200, each record once.
    done = contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                {"id": "1010", "properties": {"city": "Köln"}},
                {"id": "1011", "properties": {"city": "Bonn"}},
            ]
        )
    )
    check(done.status == "COMPLETE" and sorted(r.id for r in done.results) == ["1010", "1011"], "batch update")
    check(city(contacts, "1010") == "Köln" and city(contacts, "1011") == "Bonn", "batch update applied")

    # One invalid value refuses the whole batch: nothing of it is applied.
    body = refused(
        lambda: contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    {"id": "1010", "properties": {"city": "Berlin"}},
                    {"id": "1011", "properties": {"lifecyclestage": "banana"}},
                ]
            )
        ),
        400,
        "a batch update with one invalid option",
    )
    check(body["category"] == "VALIDATION_ERROR", "VALIDATION_ERROR")
    check(any(e.get("code") == "INVALID_OPTION" for e in body.get("errors", [])), "INVALID_OPTION")
    check(city(contacts, "1010") == "Köln", "nothing of the refused batch update applied")

    # The same id twice.
    body = refused(
        lambda: contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    {"id": "1010", "properties": {"city": "Berlin"}},
                    {"id": "1010", "properties": {"city": "Paris"}},
                ]
            )
        ),
        400,
        "a batch update naming one id twice",
    )
    check(body["message"].startswith("Duplicate IDs found in batch input"), "Duplicate IDs message")
    check(city(contacts, "1010") == "Köln", "nothing of the duplicate-id batch applied")

    # Another contact's email: the whole batch is refused.
    refused(
        lambda: contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    {"id": "1010", "properties": {"city": "Berlin"}},
                    {"id": "1012", "properties": {"email": "person20@example.com"}},
                ]
            )
        ),
        409,
        "a batch update taking another contact's email",
    )
    check(city(contacts, "1010") == "Köln", "nothing of the conflicting batch applied")

    # More than 100 inputs.
    body = refused(
        lambda: contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[{"id": str(1001 + i), "properties": {"city": "Rom"}} for i in range(101)]
            )
        ),
        400,
        "a batch update of 101 inputs",
    )
    check(city(contacts, "1010") == "Köln", "nothing of the oversized batch applied")

    # Batch create: 100 at once; refusals create nothing.
    created = contacts.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"email": f"made{i}@example.com", "firstname": "Made"}} for i in range(100)]
        )
    )
    made = [r.id for r in created.results]
    check(len(made) == 100 and len(set(made)) == 100, "batch create of 100")
    for inputs, status, what in [
        (
            [{"properties": {"email": "fresh1@example.com"}}, {"properties": {"lifecyclestage": "banana"}}],
            400,
            "a batch create with one invalid option",
        ),
        (
            [{"properties": {"email": "fresh1@example.com"}}, {"properties": {"email": "person5@example.com"}}],
            409,
            "a batch create taking an existing email",
        ),
        (
            [{"properties": {"email": f"over{i}@example.com"}} for i in range(101)],
            400,
            "a batch create of 101 inputs",
        ),
    ]:
        refused(
            lambda inputs=inputs: contacts.batch_api.create(
                BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
            ),
            status,
            what,
        )
    found = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "fresh1@example.com"}, {"id": "over0@example.com"}],
            id_property="email",
            properties=["email"],
            properties_with_history=[],
        )
    )
    check(len(found.results) == 0, "nothing of the refused batch creates exists")

    # Batch read of merged-away ids: each reads as the record it went to.
    merged = contacts.basic_api.merge(PublicMergeInput(primary_object_id="1020", object_id_to_merge="1021"))
    back = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "1020"}, {"id": "1021"}, {"id": "1022"}],
            properties=["email", "hs_merged_object_ids"],
            properties_with_history=[],
        )
    )
    ids = sorted(r.id for r in back.results)
    check(ids == sorted([merged.id, "1022"]), "merged-away ids read as the survivor, once")
    survivor = next(r for r in back.results if r.id == merged.id)
    check(survivor.properties["hs_merged_object_ids"] == "1020;1021", "the survivor lists both")

    # Companies merge: a new id, both old ids read as it.
    companies = client.crm.companies
    cm = companies.basic_api.merge(CompanyMergeInput(primary_object_id="501", object_id_to_merge="502"))
    check(cm.id not in ("501", "502"), "a companies merge returns a new id")
    for old in ("501", "502"):
        got = companies.basic_api.get_by_id(old, properties=["name", "domain"])
        check(got.id == cm.id and got.properties["name"] == "Acme", f"company {old} reads as the merged one")
    refused(
        lambda: companies.basic_api.merge(CompanyMergeInput(primary_object_id="501", object_id_to_merge="502")),
        400,
        "merging two ids of one company",
    )

    # The 250-merge cap: a record merged 250 times cannot be merged again.
    pool = [str(1001 + i) for i in range(230) if 1001 + i not in (1010, 1011, 1012, 1020, 1021)] + made
    survivor = pool.pop(0)
    for n in range(MAX_MERGES):
        survivor = contacts.basic_api.merge(
            PublicMergeInput(primary_object_id=survivor, object_id_to_merge=pool.pop(0))
        ).id
    check(True, f"{MAX_MERGES} merges into one record")
    body = refused(
        lambda: contacts.basic_api.merge(PublicMergeInput(primary_object_id=survivor, object_id_to_merge=pool[0])),
        400,
        "the 251st merge",
    )
    check(body["category"] == "VALIDATION_ERROR" and str(MAX_MERGES) in body["message"], "the cap is named")
    still = contacts.basic_api.get_by_id(pool[0], properties=["email"])
    check(still.id == pool[0], "the refused merge changed nothing")

    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
