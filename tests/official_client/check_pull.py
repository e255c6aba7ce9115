"""What dupdesk's pull relies on, driven with HubSpot's official Python client
(`hubspot-api-client`), unchanged, against the sandbox: batch reads with property history
refused past 50 inputs with HubSpot's body, search sorts and operators on dates and text, and
archiving (DELETE, batch/archive, `archived=true` reads and lists, archived records absent from
search and normal reads). Run by tests/sandbox_official_client.rs against the same seed as
check.py: contacts 1001..1230, email personN@example.com for id 1000+N, contact 1000+N last
modified on day 1 + N % 28 of January 2026 at 09:30 UTC.

Usage: python3 tests/official_client/check_pull.py URL TOKEN
"""

import json
import sys
from datetime import datetime, timezone

from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.contacts.models import BatchResponseSimplePublicObjectWithErrors

SEEDED = 230
HISTORY_LIMIT = (
    "The maximum number of inputs supported in a batch request for property histories is 50. "
    "Please reduce the number of items and try again"
)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def modified_day(n):
    return 1 + n % 28


def ms(day):
    return str(int(datetime(2026, 1, day, 9, 30, tzinfo=timezone.utc).timestamp() * 1000))


def search(contacts, filters, sorts=None, limit=200, after=None, properties=None):
    return contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[{"filters": filters}] if filters else [],
            sorts=sorts or [],
            properties=properties or ["email", "lastmodifieddate"],
            limit=limit,
            after=after,
        )
    )


def search_all(contacts, filters, sorts=None):
    ids, after = [], None
    while True:
        res = search(contacts, filters, sorts=sorts, after=after)
        ids.extend(r.id for r in res.results)
        if res.paging is None:
            return ids
        after = res.paging.next.after


def main(url, token):
    client = HubSpot(access_token=token, host=url)
    contacts = client.crm.contacts

    # History reads: at most 50 inputs.
    fifty = [{"id": str(1001 + i)} for i in range(50)]
    read = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=fifty, properties=["email"], properties_with_history=["email"]
        )
    )
    check(len(read.results) == 50, "a history read of 50 inputs is served")
    check(
        all(r.properties_with_history and r.properties_with_history.get("email") for r in read.results),
        "each record carries its email history",
    )
    try:
        contacts.batch_api.read(
            BatchReadInputSimplePublicObjectId(
                inputs=fifty + [{"id": "1051"}], properties=["email"], properties_with_history=["email"]
            )
        )
        check(False, "a history read of 51 inputs is refused")
    except ApiException as e:
        body = json.loads(e.body)
        check(e.status == 400, "51 history inputs: 400")
        check(body.get("status") == "error", "status error")
        check(body.get("category") == "VALIDATION_ERROR", "category VALIDATION_ERROR")
        check(body.get("message") == HISTORY_LIMIT, "HubSpot's message")
        check(bool(body.get("correlationId")), "a correlationId")
    hundred = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": str(1001 + i)} for i in range(100)], properties=["email"], properties_with_history=[]
        )
    )
    check(len(hundred.results) == 100, "100 inputs without history are served")

    # Sorts.
    asc = search(contacts, [], sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}])
    days = [r.properties["lastmodifieddate"] for r in asc.results]
    check(days == sorted(days), "sorted by lastmodifieddate ascending")
    check(asc.total == SEEDED, "an empty filter matches every contact")
    desc = search(contacts, [], sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}])
    days = [r.properties["lastmodifieddate"] for r in desc.results]
    check(days == sorted(days, reverse=True), "sorted by lastmodifieddate descending")
    by_email = search(contacts, [], sorts=[{"propertyName": "email", "direction": "DESCENDING"}])
    emails = [r.properties["email"] for r in by_email.results]
    check(emails == sorted(emails, reverse=True), "sorted by email descending")
    by_id = search(contacts, [], sorts=["-hs_object_id"], limit=5)
    check([r.id for r in by_id.results] == ["1230", "1229", "1228", "1227", "1226"], "sorted by id descending (string form)")

    # Date operators, with millisecond epochs and ISO strings.
    def count(day_test):
        return sum(1 for n in range(1, SEEDED + 1) if day_test(modified_day(n)))

    mod = "lastmodifieddate"
    for op, test in [
        ("GT", lambda d: d > 10),
        ("GTE", lambda d: d >= 10),
        ("LT", lambda d: d < 10),
        ("LTE", lambda d: d <= 10),
        ("EQ", lambda d: d == 10),
        ("NEQ", lambda d: d != 10),
    ]:
        got = search(contacts, [{"propertyName": mod, "operator": op, "value": ms(10)}], limit=1).total
        check(got == count(test), f"{op} on a date by epoch milliseconds ({got})")
    iso = search(contacts, [{"propertyName": mod, "operator": "EQ", "value": "2026-01-10T09:30:00.000Z"}], limit=1)
    check(iso.total == count(lambda d: d == 10), "EQ on a date by ISO string")
    # The pull's continuation: EQ on the time and GT on the id, sorted by id.
    tie = search_all(
        contacts,
        [
            {"propertyName": mod, "operator": "EQ", "value": ms(10)},
            {"propertyName": "hs_object_id", "operator": "GT", "value": "1100"},
        ],
        sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
    )
    want = [str(1000 + n) for n in range(101, SEEDED + 1) if modified_day(n) == 10]
    check(tie == want, "EQ time + GT id, in id order")
    check(
        search(contacts, [{"propertyName": "email", "operator": "HAS_PROPERTY"}], limit=1).total == SEEDED,
        "HAS_PROPERTY",
    )
    check(
        search(contacts, [{"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}], limit=1).total == SEEDED,
        "NOT_HAS_PROPERTY",
    )
    some = search(
        contacts,
        [{"propertyName": "email", "operator": "IN", "values": ["person3@example.com", "person5@example.com"]}],
    )
    check(sorted(r.id for r in some.results) == ["1003", "1005"], "IN")

    # Archiving.
    check(contacts.basic_api.archive("1001") is None, "DELETE archives (204)")
    try:
        contacts.basic_api.get_by_id("1001")
        check(False, "an archived contact is not read")
    except ApiException as e:
        check(e.status == 404, "an archived contact reads 404")
    gone = contacts.basic_api.get_by_id("1001", archived=True)
    check(gone.archived is True and gone.archived_at is not None, "archived=true reads it, with archivedAt")
    try:
        contacts.basic_api.get_by_id("1002", archived=True)
        check(False, "a live contact is not read with archived=true")
    except ApiException as e:
        check(e.status == 404, "a live contact reads 404 with archived=true")
    contacts.batch_api.archive(BatchInputSimplePublicObjectId(inputs=[{"id": "1002"}, {"id": "1003"}]))
    listed = contacts.basic_api.get_page(limit=100, archived=True)
    check(sorted(r.id for r in listed.results) == ["1001", "1002", "1003"], "archived=true lists the archived only")
    check(all(r.archived for r in listed.results), "listed as archived")
    live = contacts.get_all()
    check(len(live) == SEEDED - 3, "the live list leaves them out")
    hit = search(contacts, [{"propertyName": "email", "operator": "EQ", "value": "person2@example.com"}])
    check(hit.total == 0, "search leaves archived contacts out")
    partial = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=[{"id": "1002"}, {"id": "1004"}], properties=["email"])
    )
    check(isinstance(partial, BatchResponseSimplePublicObjectWithErrors), "a batch read of an archived id is a 207")
    check(partial.errors[0].category == "OBJECT_NOT_FOUND", "OBJECT_NOT_FOUND")
    check(partial.errors[0].context["ids"] == ["1002"], "naming the archived id")
    check([r.id for r in partial.results] == ["1004"], "the live one is read")
    archived_read = contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=[{"id": "1002"}], properties=["email"]), archived=True
    )
    check([r.id for r in archived_read.results] == ["1002"], "batch read with archived=true reads it")
    check(contacts.basic_api.archive("1001") is None, "archiving again is a 204 too")

    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
