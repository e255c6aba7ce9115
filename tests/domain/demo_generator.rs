#![allow(clippy::unwrap_used)]
//! The demo generator plants every kind of duplicate it promises, says the truth about them,
//! and is deterministic.

use std::collections::{HashMap, HashSet};

use dupdesk::config::{self, Sources};
use dupdesk::domain::model::{ObjectType, Record};
use dupdesk::harness::demo::{DemoOptions, Generator, generate, names::NICKNAMES};

fn default_dataset() -> dupdesk::harness::demo::Dataset {
    generate(&DemoOptions::default())
}

/// Same-entity pairs of one type, as records.
fn pairs<'a>(records: &'a [Record], truth: &HashMap<String, u64>) -> Vec<(&'a Record, &'a Record)> {
    let mut by_entity: HashMap<u64, Vec<&Record>> = HashMap::new();
    for r in records {
        by_entity.entry(truth[&r.id]).or_default().push(r);
    }
    let mut out = Vec::new();
    for group in by_entity.values() {
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                out.push((*a, *b));
            }
        }
    }
    out
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn is_nickname_pair(a: &str, b: &str) -> bool {
    NICKNAMES.iter().any(|(formal, nicks)| {
        (*formal == a && nicks.contains(&b)) || (*formal == b && nicks.contains(&a))
    })
}

fn strip_domain(d: &str) -> String {
    let d = d.trim().to_lowercase();
    let d = d
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    d.trim_start_matches("www.")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = generate(&DemoOptions::default());
    let b = generate(&DemoOptions::default());
    assert_eq!(a, b);
    let c = generate(&DemoOptions {
        seed: 7,
        ..DemoOptions::default()
    });
    assert_ne!(a.data, c.data);
}

#[test]
fn counts_ids_and_structure_are_sound() {
    let opts = DemoOptions::default();
    let d = default_dataset();
    assert_eq!(d.data.contacts.len(), opts.contacts);
    assert_eq!(d.data.companies.len(), opts.companies);
    d.data.check().unwrap();
    for (list, object, truth) in [
        (&d.data.contacts, ObjectType::Contacts, &d.truth.contacts),
        (&d.data.companies, ObjectType::Companies, &d.truth.companies),
    ] {
        assert_eq!(truth.len(), list.len());
        let mut last_id = 0u64;
        for r in list {
            assert_eq!(r.object_type, object);
            let id: u64 = r.id.parse().expect("numeric id");
            assert!(id > last_id, "records come in id order");
            last_id = id;
            assert_eq!(r.get("hs_object_id"), Some(r.id.as_str()));
            let created = r.created_at.unwrap();
            let updated = r.updated_at.unwrap();
            assert!(created <= updated);
            assert_eq!(
                r.get(object.last_modified_property()),
                Some(dupdesk::domain::model::format_ts(&updated).as_str())
            );
            for (prop, versions) in &r.history {
                assert!(!versions.is_empty());
                assert!(
                    versions
                        .windows(2)
                        .all(|w| w[0].timestamp >= w[1].timestamp),
                    "{} {prop}: history is newest first",
                    r.id
                );
                assert_eq!(r.properties[prop], versions[0].value, "{} {prop}", r.id);
                assert!(
                    versions
                        .iter()
                        .all(|v| v.timestamp >= created && v.timestamp <= updated)
                );
                let year = versions[0].timestamp.format("%Y").to_string();
                assert!(["2024", "2025", "2026"].contains(&year.as_str()));
            }
        }
        // Creation order follows id order.
        assert!(list.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    }
}

#[test]
fn every_value_comes_from_a_configured_source_system() {
    let config = config::load(&Sources::default()).unwrap();
    let d = default_dataset();
    let mut systems = HashSet::new();
    for r in d.data.records() {
        for v in r.history.values().flatten() {
            let system = config
                .sources
                .system_for(&v.source_type, v.source_id.as_deref());
            assert!(
                r.history
                    .values()
                    .flatten()
                    .all(|v| v.source_type != "CRM_UI" || v.source_id.is_none())
            );
            systems.insert(system.to_string());
        }
    }
    let want: HashSet<String> = ["crm", "erp", "marketing"].map(String::from).into();
    assert_eq!(systems, want);
}

#[test]
fn every_planted_contact_duplicate_kind_is_present() {
    let d = default_dataset();
    let pairs = pairs(&d.data.contacts, &d.truth.contacts);
    assert!(pairs.len() >= 40, "{} duplicate pairs", pairs.len());
    let mut found: HashSet<&str> = HashSet::new();
    for (a, b) in &pairs {
        let (fa, fb) = (
            a.get("firstname").unwrap_or(""),
            b.get("firstname").unwrap_or(""),
        );
        let (la, lb) = (
            a.get("lastname").unwrap_or(""),
            b.get("lastname").unwrap_or(""),
        );
        if is_nickname_pair(fa.trim(), fb.trim()) {
            found.insert("nickname");
        }
        for (x, y) in [(fa, fb), (la, lb)] {
            if x != y && x.to_lowercase() == y.to_lowercase() {
                found.insert("case");
            }
            let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            if x != y && squeeze(x) == squeeze(y) {
                found.insert("whitespace");
            }
            let (x, y) = (x.trim(), y.trim());
            if x.to_lowercase() != y.to_lowercase()
                && !is_nickname_pair(x, y)
                && strsim::damerau_levenshtein(&x.to_lowercase(), &y.to_lowercase()) <= 2
            {
                found.insert("typo");
            }
        }
        match (a.get("email"), b.get("email")) {
            (Some(x), Some(y)) if x != y => {
                let (x, y) = (x.to_lowercase(), y.to_lowercase());
                let (lx, dx) = x.split_once('@').unwrap();
                let (ly, dy) = y.split_once('@').unwrap();
                if dx == "gmail.com"
                    && dx == dy
                    && lx.replace('.', "") == ly.replace('.', "")
                    && lx != ly
                {
                    found.insert("gmail dots");
                }
                if (lx.contains('+') || ly.contains('+'))
                    && lx.split('+').next() == ly.split('+').next()
                {
                    found.insert("plus tag");
                }
                if dx != dy && fa == fb && la == lb && a.get("company") != b.get("company") {
                    found.insert("changed job");
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                found.insert("missing email");
            }
            _ => {}
        }
        if let (Some(x), Some(y)) = (a.get("phone"), b.get("phone")) {
            let (dx, dy) = (digits(x), digits(y));
            if x != y
                && (dx.ends_with(&dy)
                    || dy.ends_with(&dx)
                    || dx.trim_start_matches('0') == dy.trim_start_matches('0'))
            {
                found.insert("phone format");
            }
        }
        if a.get("country").is_some()
            && b.get("country").is_some()
            && a.get("country") != b.get("country")
        {
            found.insert("country spelling");
        }
        let latest_system = |r: &Record| {
            let v = r.latest_version("firstname").unwrap();
            (v.source_type.clone(), v.source_id.clone())
        };
        if latest_system(a) != latest_system(b) {
            found.insert("cross-system");
        }
        if a.get("erp_customer_id").is_some()
            && a.get("erp_customer_id") == b.get("erp_customer_id")
        {
            found.insert("same erp id");
        }
        // The newer record holds the older value of some field: per-field recency must be
        // read from history, not from the record's update time.
        let (old, new) = if a.updated_at < b.updated_at {
            (a, b)
        } else {
            (b, a)
        };
        for prop in ["phone", "email", "jobtitle", "erp_customer_id"] {
            if let (Some(vo), Some(vn)) = (old.latest_version(prop), new.latest_version(prop))
                && vo.timestamp > vn.timestamp
            {
                found.insert("field newer on the older record");
            }
        }
    }
    for r in &d.data.contacts {
        let h = |p: &str| r.history.get(p).map(Vec::as_slice).unwrap_or_default();
        if h("phone").len() >= 2 && h("phone")[0].source_id.as_deref() == Some("erp-sync") {
            found.insert("phone rewritten by the erp");
        }
        if h("email").len() >= 2 && h("email").last().unwrap().source_type == "FORM" {
            found.insert("email first from a form");
        }
    }
    for kind in [
        "nickname",
        "case",
        "whitespace",
        "typo",
        "gmail dots",
        "plus tag",
        "changed job",
        "missing email",
        "phone format",
        "country spelling",
        "cross-system",
        "same erp id",
        "field newer on the older record",
        "phone rewritten by the erp",
        "email first from a form",
    ] {
        assert!(
            found.contains(kind),
            "no planted {kind} in the default dataset: {found:?}"
        );
    }
}

#[test]
fn colleagues_sharing_a_mailbox_are_different_people() {
    let d = default_dataset();
    let mut by_email: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in &d.data.contacts {
        if let Some(e) = r.get("email") {
            by_email.entry(e.to_lowercase()).or_default().push(r);
        }
    }
    let mut shared = 0;
    for (email, records) in &by_email {
        let entities: HashSet<u64> = records.iter().map(|r| d.truth.contacts[&r.id]).collect();
        if entities.len() > 1 {
            let local = email.split('@').next().unwrap();
            assert!(
                dupdesk::harness::demo::names::SHARED_MAILBOXES.contains(&local),
                "{email} is shared by different people but is no team mailbox"
            );
            shared += 1;
            let other = records
                .iter()
                .find(|r| d.truth.contacts[&r.id] != d.truth.contacts[&records[0].id])
                .unwrap();
            assert!(
                !d.truth
                    .same_entity(ObjectType::Contacts, &records[0].id, &other.id)
            );
        }
    }
    assert!(shared >= 2, "{shared} shared mailboxes");
}

#[test]
fn every_planted_company_variation_is_present() {
    let d = default_dataset();
    let pairs = pairs(&d.data.companies, &d.truth.companies);
    assert!(pairs.len() >= 8, "{} company duplicate pairs", pairs.len());
    let mut found: HashSet<&str> = HashSet::new();
    for (a, b) in &pairs {
        let (na, nb) = (a.get("name").unwrap(), b.get("name").unwrap());
        if na != nb && na.to_lowercase() == nb.to_lowercase() {
            found.insert("name case");
        }
        let legal = ["Incorporated", "Inc", "GmbH", "Limited", "Ltd", "G.m.b.H."];
        if na != nb && legal.iter().any(|l| na.contains(l) != nb.contains(l)) {
            found.insert("legal form");
        }
        if let (Some(x), Some(y)) = (a.get("domain"), b.get("domain"))
            && x != y
            && strip_domain(x) == strip_domain(y)
        {
            found.insert("domain spelling");
        }
        if let (Some(x), Some(y)) = (a.get("phone"), b.get("phone"))
            && x != y
            && digits(x)
                .trim_start_matches('0')
                .ends_with(digits(y).trim_start_matches('0').get(3..).unwrap_or(""))
        {
            found.insert("phone format");
        }
    }
    for kind in ["name case", "legal form", "domain spelling", "phone format"] {
        assert!(found.contains(kind), "no planted {kind}: {found:?}");
    }
    // Contacts name companies that exist.
    let bases: HashSet<String> = d
        .data
        .companies
        .iter()
        .filter_map(|c| c.get("domain").map(strip_domain))
        .collect();
    let at_known = d
        .data
        .contacts
        .iter()
        .filter_map(|c| c.get("email"))
        .filter(|e| bases.contains(e.rsplit('@').next().unwrap()))
        .count();
    assert!(
        at_known > 50,
        "{at_known} contacts mail from a known company domain"
    );
}

#[test]
fn the_truth_scores_a_perfect_answer_perfectly() {
    let d = default_dataset();
    let groups = d.truth.duplicate_groups(ObjectType::Contacts);
    let m = d.truth.score_clusters(ObjectType::Contacts, &groups);
    assert_eq!(m.precision(), 1.0);
    assert_eq!(m.recall(), 1.0);
    assert_eq!(
        m.true_positives as usize,
        d.truth.true_pairs(ObjectType::Contacts).len()
    );
}

#[test]
fn streaming_and_collecting_agree_and_scale() {
    let opts = DemoOptions::scaled(5_000);
    let generator = Generator::new(&opts);
    let mut n = 0;
    let mut ids = HashSet::new();
    for g in generator.contacts() {
        assert!(ids.insert(g.record.id));
        n += 1;
    }
    assert_eq!(n, 5_000);
    assert_eq!(generator.companies().count(), 1_000);
    // The parallel collection holds exactly what the stream yields.
    let opts = DemoOptions::scaled(3_000);
    let collected = generate(&opts);
    let mut streamed: Vec<_> = Generator::new(&opts).contacts().collect();
    streamed.sort_by_key(|g| g.record.id.parse::<u64>().unwrap());
    assert_eq!(streamed.len(), collected.data.contacts.len());
    for (g, r) in streamed.iter().zip(&collected.data.contacts) {
        assert_eq!(&g.record, r);
        assert_eq!(collected.truth.contacts[&r.id], g.entity);
    }
    let small = DemoOptions {
        contacts: 50,
        companies: 0,
        ..DemoOptions::default()
    };
    let d = generate(&small);
    assert_eq!(d.data.contacts.len(), 50);
    assert!(d.data.companies.is_empty());
}

/// Every value the generator gives a record is one the sandbox (as strict as HubSpot) takes
/// back: a steward's field choices come from the members' current values, and dupdesk writes
/// them to the survivor after the merge. Each record's writable values are PATCHed onto it
/// over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_takes_back_every_value_the_demo_generates() {
    use dupdesk::harness::sandbox::{self, RateLimit, SandboxOptions};
    use serde_json::{Value, json};

    let data = default_dataset().data;
    let sb = sandbox::start(SandboxOptions {
        seed: Some(data.clone()),
        token: Some("demo".into()),
        rate_limit: RateLimit {
            max: 100_000,
            interval: std::time::Duration::from_secs(10),
            daily: 10_000_000,
        },
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = sb.base_url();
    for t in ObjectType::ALL {
        let defs: Value = http
            .get(format!("{base}/crm/v3/properties/{t}"))
            .bearer_auth("demo")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let writable: HashSet<&str> = defs["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["modificationMetadata"]["readOnlyValue"] == false)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let records = match t {
            ObjectType::Contacts => &data.contacts,
            ObjectType::Companies => &data.companies,
        };
        for r in records {
            let props: serde_json::Map<String, Value> = r
                .properties
                .iter()
                .filter(|(name, _)| writable.contains(name.as_str()))
                .filter_map(|(name, v)| Some((name.clone(), json!(v.as_deref()?))))
                .collect();
            let resp = http
                .patch(format!("{base}/crm/v3/objects/{t}/{}", r.id))
                .bearer_auth("demo")
                .json(&json!({ "properties": props }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert!(status.is_success(), "{t} {}: {status} {body}", r.id);
        }
    }
    sb.shutdown().await;

    // The same rule over a larger, more varied set, without the round trips.
    let big = generate(&DemoOptions::scaled(20_000)).data;
    for r in &big.contacts {
        if let Some(email) = r.get("email") {
            assert!(
                dupdesk::harness::sandbox::properties::valid_email(email),
                "contact {}: {email}",
                r.id
            );
        }
    }
}
