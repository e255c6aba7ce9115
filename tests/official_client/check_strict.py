"""The sandbox's strictness as HubSpot's official Python client (`hubspot-api-client`) sees it:
each refusal comes back as the client's ApiException with HubSpot's status and body. Run by
tests/sandbox_official_client.rs against two sandboxes seeded with contacts 1001..1230 (email
personN@example.com for id 1000+N) and companies 501..503:

  STRICT_URL  a generous general limit and a search limit of 8 per minute
  TIGHT_URL   a general limit of 3 per minute

Usage: python3 tests/official_client/check_strict.py STRICT_URL TIGHT_URL TOKEN
"""

import json
import sys

from hubspot import HubSpot
from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch
from hubspot.crm.contacts import (
    ApiException,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.properties import PropertyCreate


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def refused(call, exc=ApiException):
    """The ApiException a call raises (it must raise one)."""
    try:
        call()
    except exc as e:
        return e
    raise AssertionError("the call was not refused")


def body(e):
    return json.loads(e.body)


def codes(e):
    return sorted(err.get("code") for err in body(e).get("errors", []))


def main(strict_url, tight_url, token):
    client = HubSpot(access_token=token, host=strict_url)
    contacts = client.crm.contacts
    searches = 0

    # The 10,000-result window: paging past it is a 400, whatever the total.
    e = refused(
        lambda: contacts.search_api.do_search(
            PublicObjectSearchRequest(limit=10, after="10000")
        )
    )
    searches += 1
    check(e.status == 400 and body(e)["category"] == "VALIDATION_ERROR", "past 10,000 is a 400")
    e = refused(
        lambda: contacts.search_api.do_search(PublicObjectSearchRequest(limit=201))
    )
    searches += 1
    check(e.status == 400 and "200" in body(e)["message"], "a search page over 200 is a 400")
    page = contacts.search_api.do_search(PublicObjectSearchRequest(limit=200, after="9900"))
    searches += 1
    check(page.results == [] and page.paging is None, "the window's edge is an empty last page")
    counted = contacts.search_api.do_search(PublicObjectSearchRequest(limit=0))
    searches += 1
    check(counted.total == 230 and counted.results == [], "limit 0 answers the total")
    check(counted.paging is None, "limit 0 hands back no cursor to loop on")

    # Companies search, through the companies module, sorted on hs_lastmodifieddate.
    found = client.crm.companies.search_api.do_search(
        CompanySearch(
            filter_groups=[
                {"filters": [{"propertyName": "domain", "operator": "EQ", "value": "GLOBEX.example"}]}
            ],
            properties=["name", "domain"],
            limit=10,
        )
    )
    searches += 1
    check(found.total == 1 and found.results[0].properties["name"] == "Globex", "companies search")
    ordered = client.crm.companies.search_api.do_search(
        CompanySearch(sorts=["-hs_lastmodifieddate"], properties=["hs_lastmodifieddate"], limit=3)
    )
    searches += 1
    stamps = [r.properties["hs_lastmodifieddate"] for r in ordered.results]
    check(
        len(stamps) == 3 and all(stamps) and stamps == sorted(stamps, reverse=True),
        "companies sort on hs_lastmodifieddate",
    )

    # The search limit: searches past it are 429 SECONDLY, parsed by the client.
    while searches < 8:
        contacts.search_api.do_search(PublicObjectSearchRequest(limit=1))
        searches += 1
    e = refused(lambda: contacts.search_api.do_search(PublicObjectSearchRequest(limit=1)))
    b = body(e)
    check(e.status == 429, "a search over the search limit is a 429")
    check(
        b["policyName"] == "SECONDLY"
        and b["errorType"] == "RATE_LIMIT"
        and b["message"] == "You have reached your secondly limit."
        and b["status"] == "error"
        and b["correlationId"],
        "its body is HubSpot's SECONDLY body",
    )
    check(e.headers.get("X-HubSpot-RateLimit-Max") is not None, "with the rate-limit headers")
    e = refused(
        lambda: client.crm.companies.search_api.do_search(CompanySearch(limit=1)),
        CompaniesApiException,
    )
    check(e.status == 429, "companies search shares the search budget")
    # Other endpoints are not held back by it.
    check(contacts.basic_api.get_by_id("1001").id == "1001", "reads go on meanwhile")

    # Read-only and invalid values, each with HubSpot's code.
    for name, kind, field in [("renewal_date", "date", "date"), ("seats", "number", "number")]:
        client.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(
                name=name, label=name, type=kind, field_type=field, group_name="contactinformation"
            ),
        )
    for props, code in [
        ({"lifecyclestage": "banana"}, "INVALID_OPTION"),
        ({"email": "not an email"}, "INVALID_EMAIL"),
        # A date property takes midnight UTC only; a value not read as a date or a number is
        # HubSpot's INVALID_LONG.
        ({"renewal_date": "1786334400000"}, "INVALID_DATE"),
        ({"renewal_date": "31/12/2026"}, "INVALID_LONG"),
        ({"seats": "twelve"}, "INVALID_LONG"),
        ({"hs_object_id": "77"}, "READ_ONLY_VALUE"),
    ]:
        e = refused(lambda: contacts.basic_api.update("1001", SimplePublicObjectInput(properties=props)))
        check(
            e.status == 400 and body(e)["category"] == "VALIDATION_ERROR" and codes(e) == [code],
            f"{sorted(props)[0]} refused with {code} ({e.status} {e.body})",
        )
    unchanged = contacts.basic_api.get_by_id("1001", properties=["email", "lifecyclestage"])
    check(unchanged.properties["email"] == "person1@example.com", "refused updates change nothing")
    e = refused(
        lambda: contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "Person2@example.com"})
        )
    )
    check(
        e.status == 409 and body(e)["message"] == "Contact already exists. Existing ID: 1002",
        "a second contact with an email is a 409 naming the first",
    )

    # A URL over HubSpot's length: 414, before the token is looked at.
    many = [f"custom_property_number_{i:04}" for i in range(700)]
    e = refused(lambda: contacts.basic_api.get_page(limit=10, properties=many))
    check(e.status == 414, "a 17,000-character URL is a 414")
    e = refused(
        lambda: HubSpot(access_token="wrong", host=strict_url).crm.contacts.basic_api.get_page(
            properties=many
        )
    )
    check(e.status == 414, "even with a bad token")

    # 401 bodies, as the client parses them.
    e = refused(lambda: HubSpot(access_token="wrong", host=strict_url).crm.contacts.basic_api.get_page())
    b = body(e)
    check(
        e.status == 401 and b["category"] == "INVALID_AUTHENTICATION" and b["status"] == "error",
        "a bad token is a 401 INVALID_AUTHENTICATION",
    )
    check(b["message"] and b["correlationId"], "with a message and a correlation id")

    # The ten-secondly limit, on a sandbox of 3 requests per window.
    tight = HubSpot(access_token=token, host=tight_url).crm.contacts
    for _ in range(3):
        tight.basic_api.get_page(limit=1)
    e = refused(lambda: tight.basic_api.get_page(limit=1))
    b = body(e)
    check(e.status == 429, "past the general limit is a 429")
    check(
        b["policyName"] == "TEN_SECONDLY_ROLLING"
        and b["errorType"] == "RATE_LIMIT"
        and b["message"] == "You have reached your ten_secondly_rolling limit."
        and b["correlationId"]
        and b["requestId"],
        "its body is HubSpot's TEN_SECONDLY_ROLLING body",
    )
    check(e.headers.get("X-HubSpot-RateLimit-Remaining") == "0", "with Remaining: 0")
    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
