"""Drive the sandbox CRM with HubSpot's official Python client (`hubspot-api-client`), unchanged,
pointed at the sandbox's URL. Run by tests/sandbox_official_client.rs against a sandbox seeded
with contacts 1001..1230 (email personN@example.com for id 1000+N) and companies 501..503.

Usage: python3 tests/official_client/check.py URL TOKEN
"""

import sys

from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.models import (
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties.models import CollectionResponsePropertyNoPaging, ModelProperty

SEEDED = 230


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def main(url, token):
    client = HubSpot(access_token=token, host=url)
    contacts = client.crm.contacts

    # List with cursor paging, page by page.
    ids, after, pages = [], None, 0
    while True:
        page = contacts.basic_api.get_page(
            limit=100, after=after, properties=["email", "phone"], archived=False
        )
        pages += 1
        ids.extend(r.id for r in page.results)
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    check(len(ids) == SEEDED and len(set(ids)) == SEEDED, f"paged {SEEDED} contacts once each")
    check(pages == 3, "three pages of at most 100")
    # The client's own helper, which follows paging.next.after itself.
    everyone = contacts.get_all(properties=["email"])
    check(len(everyone) == SEEDED, "get_all returns every contact")
    check(everyone[0].properties["email"] == "person1@example.com", "email property read")

    # One record with property history.
    one = contacts.basic_api.get_by_id(
        "1001", properties=["email", "phone"], properties_with_history=["email"]
    )
    hist = one.properties_with_history["email"]
    check(one.id == "1001" and hist[0].value == "person1@example.com", "history of email")
    check(hist[0].timestamp is not None and hist[0].source_type, "history has timestamp and source")
    check(one.created_at is not None and one.updated_at is not None, "dates parse as datetimes")

    # Update.
    updated = contacts.basic_api.update(
        "1001", SimplePublicObjectInput(properties={"phone": "+1 555 0100"})
    )
    check(updated.properties["phone"] == "+1 555 0100", "update sets phone")
    again = contacts.basic_api.get_by_id(
        "1001", properties=["phone"], properties_with_history=["phone"]
    )
    check(again.properties_with_history["phone"][0].value == "+1 555 0100", "update in history")

    # Errors come back as ApiException with HubSpot's body.
    try:
        contacts.basic_api.get_by_id("999999")
        check(False, "unknown id raises")
    except ApiException as e:
        check(e.status == 404 and "OBJECT_NOT_FOUND" in e.body, "unknown id is a 404")
    try:
        contacts.basic_api.update(
            "1001", SimplePublicObjectInput(properties={"no_such_property": "x"})
        )
        check(False, "unknown property raises")
    except ApiException as e:
        check(e.status == 400 and "VALIDATION_ERROR" in e.body, "unknown property is a 400")

    # Property definitions, through the client's properties module and its own models.
    properties = client.crm.properties.core_api
    every = properties.get_all("contacts", archived=False)
    check(isinstance(every, CollectionResponsePropertyNoPaging), "properties listing parses")
    by_name = {p.name: p for p in every.results}
    stage = by_name["lifecyclestage"]
    check(stage.type == "enumeration" and stage.field_type == "radio", "lifecyclestage is an enumeration")
    check([o.value for o in stage.options][:2] == ["subscriber", "lead"], "lifecyclestage options")
    check(by_name["createdate"].modification_metadata.read_only_value, "createdate is read-only")
    check(by_name["email"].has_unique_value is False, "email's definition does not say unique")
    one = properties.get_by_name("contacts", "email")
    check(isinstance(one, ModelProperty) and one.label == "Email", "one property by name")
    try:
        properties.get_by_name("contacts", "no_such_property")
        check(False, "an unknown property raises")
    except PropertiesApiException as e:
        check(e.status == 404, "an unknown property is a 404")
    companies_props = properties.get_all("companies")
    check(any(p.name == "industry" for p in companies_props.results), "company properties")

    # A value outside an enumeration's options: the client's own exception, HubSpot's code.
    try:
        contacts.basic_api.update(
            "1001", SimplePublicObjectInput(properties={"lifecyclestage": "vip"})
        )
        check(False, "a bad option raises")
    except ApiException as e:
        check(
            e.status == 400 and "VALIDATION_ERROR" in e.body and "INVALID_OPTION" in e.body,
            "a bad option is a 400 INVALID_OPTION",
        )
    ok = contacts.basic_api.update(
        "1001", SimplePublicObjectInput(properties={"lifecyclestage": "customer"})
    )
    check(ok.properties["lifecyclestage"] == "customer", "a good option is accepted")

    # Batch read, all found (200) and one missing (207).
    batch = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "1002"}, {"id": "1003"}],
            properties=["email"],
            properties_with_history=["email"],
        )
    )
    check(isinstance(batch, BatchResponseSimplePublicObject), "batch read 200")
    check(
        sorted(r.id for r in batch.results) == ["1002", "1003"] and batch.status == "COMPLETE",
        "batch read returns both",
    )
    partial = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": "1002"}, {"id": "424242"}], properties=["email"], properties_with_history=[]
        )
    )
    check(isinstance(partial, BatchResponseSimplePublicObjectWithErrors), "batch read 207")
    check(partial.num_errors == 1 and partial.errors[0].context["ids"] == ["424242"], "207 names the missing id")

    # Search by email (case-insensitive), and by date with paging.
    found = contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "PERSON7@example.com"}]}
            ],
            properties=["email"],
            limit=10,
        )
    )
    check(found.total == 1 and found.results[0].id == "1007", "search EQ by email")
    seen, after = [], None
    while True:
        res = contacts.search_api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[
                    {"filters": [{"propertyName": "createdate", "operator": "GTE", "value": "2026-01-01T00:00:00Z"}]}
                ],
                sorts=["hs_object_id"],
                limit=100,
                after=after,
            )
        )
        seen.extend(r.id for r in res.results)
        if res.paging is None:
            break
        after = res.paging.next.after
    check(len(set(seen)) == SEEDED, "search paging covers every contact")

    # Create.
    created = contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "new.person@example.com", "firstname": "New"})
    )
    check(created.id and created.properties["email"] == "new.person@example.com", "create")

    # Merge: a new record with a new id, both old ids read as it.
    merged = contacts.basic_api.merge(
        PublicMergeInput(primary_object_id="1002", object_id_to_merge="1003")
    )
    check(merged.id not in ("1002", "1003"), "merge returns a new id")
    for old in ("1002", "1003"):
        back = contacts.basic_api.get_by_id(old, properties=["email", "hs_merged_object_ids"])
        check(back.id == merged.id, f"old id {old} reads as the merged record")
        check(back.properties["hs_merged_object_ids"] == "1002;1003", "hs_merged_object_ids")
        check(back.properties["email"] == "person2@example.com", "the primary's email wins")
    try:
        contacts.basic_api.merge(PublicMergeInput(primary_object_id="1002", object_id_to_merge="1003"))
        check(False, "merging twice raises")
    except ApiException as e:
        check(e.status == 400, "merging ids of one record is a 400")

    # Companies, through their own API module.
    companies = client.crm.companies
    page = companies.basic_api.get_page(limit=10, properties=["name", "domain"])
    check(len(page.results) == 3 and page.paging is None, "companies list")
    check(page.results[0].properties["domain"] == "acme.example", "company domain")
    print("all checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: check.py URL TOKEN")
    main(sys.argv[1], sys.argv[2])
