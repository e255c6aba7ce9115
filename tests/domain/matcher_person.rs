//! The matcher on a schema that is not the demo's: person records with a given name, a surname,
//! a street address, a postcode, a date of birth and an SSN, with the errors such registers
//! carry (typos, nicknames, swapped day and month, abbreviated streets, a mistyped SSN digit,
//! missing values) and with distinct people sharing names. Configured only by naming the field
//! kinds: no weights and no blocking rules are set by hand.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use dupdesk::domain::matcher::{
    self, FieldKind, FieldSpec, MatchConfig, MatchInputs, MatcherSettings, ObjectSchemaConfig,
    Table,
};
use dupdesk::domain::model::{ObjectType, Record};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GIVEN: &[&str] = &[
    "Robert",
    "William",
    "Elizabeth",
    "Margaret",
    "James",
    "Mary",
    "Patricia",
    "Michael",
    "Jennifer",
    "Linda",
    "David",
    "Susan",
    "Richard",
    "Joseph",
    "Thomas",
    "Karen",
    "Charles",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Sandra",
    "Anthony",
    "Donna",
    "Katherine",
    "Steven",
];
const NICK: &[(&str, &str)] = &[
    ("Robert", "Bob"),
    ("William", "Bill"),
    ("Elizabeth", "Liz"),
    ("Margaret", "Peggy"),
    ("James", "Jim"),
    ("Michael", "Mike"),
    ("Richard", "Dick"),
    ("Joseph", "Joe"),
    ("Thomas", "Tom"),
    ("Katherine", "Kate"),
    ("Steven", "Steve"),
];
const SURNAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Clark",
];
const STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
];

struct Person {
    given: String,
    surname: String,
    number: u32,
    street: &'static str,
    postcode: String,
    dob: (i32, u32, u32),
    ssn: String,
}

fn typo(s: &str, rng: &mut ChaCha8Rng) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..c.len() - 1);
    match rng.random_range(0..3) {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        _ => c[i] = (b'a' + rng.random_range(0..26u8)) as char,
    }
    c.into_iter().collect()
}

fn record(id: usize, p: &Person, rng: &mut ChaCha8Rng, corrupt: bool) -> Record {
    let mut given = p.given.clone();
    let mut surname = p.surname.clone();
    let mut address = format!("{} {} Street", p.number, p.street);
    let mut postcode = Some(p.postcode.clone());
    let (y, m, d) = p.dob;
    let mut dob = Some(format!("{y:04}-{m:02}-{d:02}"));
    let mut ssn = Some(p.ssn.clone());
    if corrupt {
        for _ in 0..rng.random_range(1..=3) {
            match rng.random_range(0..8) {
                0 => given = typo(&given, rng),
                1 => surname = typo(&surname, rng),
                2 => {
                    if let Some((_, n)) = NICK.iter().find(|(f, _)| *f == p.given) {
                        given = n.to_string();
                    }
                }
                3 => address = format!("{} {} St.", p.number, p.street),
                4 => postcode = None,
                5 if d <= 12 => dob = Some(format!("{y:04}-{d:02}-{m:02}")),
                5 => dob = Some(format!("{d:02}.{m:02}.{y:04}")),
                6 => ssn = Some(typo(&p.ssn, rng)),
                _ => ssn = None,
            }
        }
        if rng.random_bool(0.3) {
            surname = surname.to_uppercase();
        }
    }
    let mut properties = BTreeMap::new();
    properties.insert("given".to_string(), Some(given));
    properties.insert("family".to_string(), Some(surname));
    properties.insert("street".to_string(), Some(address));
    properties.insert("zip".to_string(), postcode);
    properties.insert("dob".to_string(), dob);
    properties.insert(
        "ssn".to_string(),
        ssn.map(|s| format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..])),
    );
    Record {
        object_type: ObjectType::Contacts,
        id: format!("P{id:05}"),
        properties,
        history: BTreeMap::new(),
        created_at: None,
        updated_at: None,
        archived: false,
    }
}

/// Person records and the entity of each.
fn people(entities: usize, seed: u64) -> (Vec<Record>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Vec::new();
    let mut truth = Vec::new();
    for e in 0..entities {
        let p = Person {
            given: GIVEN.choose(&mut rng).unwrap().to_string(),
            surname: SURNAMES.choose(&mut rng).unwrap().to_string(),
            number: rng.random_range(1..400),
            street: STREETS.choose(&mut rng).unwrap(),
            postcode: format!("{:05}", rng.random_range(10000..10060)),
            dob: (
                rng.random_range(1940..2005),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            ),
            ssn: format!("{:09}", rng.random_range(100_000_000..999_999_999u32)),
        };
        let copies = if rng.random_bool(0.3) {
            rng.random_range(2..=3)
        } else {
            1
        };
        for k in 0..copies {
            records.push(record(records.len(), &p, &mut rng, k > 0));
            truth.push(e);
        }
    }
    (records, truth)
}

/// Smaller samples than the defaults, so the test stays quick in a debug build.
fn settings() -> MatcherSettings {
    MatcherSettings {
        u_sample_pairs: 100_000,
        em_sample_pairs: 20_000,
        ..MatcherSettings::default()
    }
}

fn schema() -> ObjectSchemaConfig {
    let f = |p: &str, kind| FieldSpec {
        property: p.into(),
        kind,
    };
    ObjectSchemaConfig {
        fields: vec![
            f("given", FieldKind::GivenName),
            f("family", FieldKind::Surname),
            f("street", FieldKind::Address),
            f("zip", FieldKind::Postcode),
            f("dob", FieldKind::Date),
            f("ssn", FieldKind::Identifier),
        ],
        blocking: vec![],
    }
}

#[test]
fn a_person_register_clusters_well_without_hand_set_weights() {
    let (records, truth) = people(1200, 11);
    let cfg = MatchConfig::from_schema(&settings(), ObjectType::Contacts, &schema()).unwrap();
    let table = Table::build(&cfg, &records);
    let out = matcher::match_table(&cfg, &table, MatchInputs::default(), &|_| {});

    let mut per_entity: HashMap<usize, u64> = HashMap::new();
    for e in &truth {
        *per_entity.entry(*e).or_default() += 1;
    }
    let true_pairs: u64 = per_entity.values().map(|k| k * (k - 1) / 2).sum();
    let (mut tp, mut fp) = (0u64, 0u64);
    for c in &out.clusters {
        for (i, &a) in c.members.iter().enumerate() {
            for &b in &c.members[i + 1..] {
                if truth[a as usize] == truth[b as usize] {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
        }
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / true_pairs as f64;
    let f1 = 2.0 * precision * recall / (precision + recall);
    eprintln!("person register: precision {precision:.3} recall {recall:.3} f1 {f1:.3}");
    assert!(
        f1 >= 0.9,
        "precision {precision:.3} recall {recall:.3} f1 {f1:.3} ({} candidate pairs)",
        out.candidate_pairs
    );
    // Blocking keeps the work far below all pairs.
    let n = records.len() as u64;
    assert!(out.candidate_pairs < n * (n - 1) / 2 / 20);
    // Every rule's EM ran and the derived rules include the identifier and the birth date.
    assert!(out.model.fits.iter().any(|f| f.rule == "ssn"));
    assert!(out.model.fits.iter().any(|f| f.rule.starts_with("dob+")));
}

#[test]
fn explanations_name_each_field_and_add_up() {
    let (records, _) = people(400, 5);
    let cfg = MatchConfig::from_schema(&settings(), ObjectType::Contacts, &schema()).unwrap();
    let table = Table::build(&cfg, &records);
    let out = matcher::match_table(&cfg, &table, MatchInputs::default(), &|_| {});
    let blocks = matcher::Blocks::build(&cfg, &table);
    let scorer = matcher::Scorer::new(&table, &out.model, Some(&blocks));
    let c = out.clusters.first().unwrap();
    let e = scorer.explain(c.members[0] as usize, c.members[1] as usize);
    assert_eq!(e.fields.len(), 6);
    let sum: f64 = e.prior_weight + e.fields.iter().map(|f| f.weight).sum::<f64>();
    assert!((sum - e.match_weight).abs() < 1e-9);
    assert!(e.probability >= cfg.settings.threshold || c.members.len() > 2);
    let json = serde_json::to_string(&e).unwrap();
    let back: matcher::PairExplanation = serde_json::from_str(&json).unwrap();
    assert_eq!(back.fields.len(), 6);
    assert_eq!(back.rule, e.rule);
}
