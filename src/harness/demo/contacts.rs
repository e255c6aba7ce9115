//! Person identities and contact records with planted duplicates: nicknames, typos, case and
//! whitespace, Gmail dots and plus-tags, phone formats, missing fields, another country
//! spelling, another email; a person who changed jobs; colleagues sharing a team mailbox
//! (different people); and histories in which the ERP, marketing forms and CRM users each
//! wrote some of the values at their own times.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::build::{Builder, Source, created_at, late, later};
use super::companies::{self, CompanyIdentity, phone_in, random_location};
use super::names::{
    Country, FIRST_NAMES, JOB_TITLES, LAST_NAMES, NICKNAMES, PERSONAL_DOMAINS, SHARED_MAILBOXES,
};
use super::noise::{self, Phone, PhoneFormat};
use super::plan::{
    Group, GroupKind, TAG_MAILBOX, TAG_PERSON, TAG_PERSON_COMPANY, TAG_RECORD, stream_rng,
};
use super::{CONTACT_ID_BASE, Generated, Generator};
use crate::domain::model::ObjectType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variation {
    Nickname,
    GmailDots,
    Typo,
    PhoneFormat,
    Case,
    PlusTag,
    Whitespace,
    MissingFields,
    CountryAlias,
    OtherEmail,
}

/// In turn, so the first few duplicated entities already show every kind.
const VARIATIONS: [Variation; 10] = [
    Variation::Nickname,
    Variation::GmailDots,
    Variation::Typo,
    Variation::PhoneFormat,
    Variation::Case,
    Variation::PlusTag,
    Variation::Whitespace,
    Variation::MissingFields,
    Variation::CountryAlias,
    Variation::OtherEmail,
];

fn planted(g: &Group, k: usize) -> Variation {
    VARIATIONS[(g.dup_index as usize + k - 1) % VARIATIONS.len()]
}

/// What is true about a person.
struct Person {
    first: &'static str,
    last: &'static str,
    company: CompanyIdentity,
    country: &'static Country,
    city: usize,
    phone: Phone,
    jobtitle: &'static str,
    work_email: String,
    personal_email: String,
    /// Whether the person gave their personal address rather than the work one.
    prefers_personal: bool,
    erp_id: String,
}

/// The employer of person `entity`, drawn on its own stream so a colleague can look it up.
fn employer(generator: &Generator, entity: u64) -> u64 {
    let mut rng = stream_rng(generator.seed, TAG_PERSON_COMPANY, entity);
    rng.random_range(0..generator.company_universe)
}

fn work_email(first: &str, last: &str, domain: &str, pattern: u8) -> String {
    let (f, l) = (noise::ascii_fold(first), noise::ascii_fold(last));
    let local = match pattern {
        0 => format!("{f}.{l}"),
        1 => format!("{}{l}", f.chars().next().unwrap_or('x')),
        2 => f,
        _ => format!("{f}_{l}"),
    };
    format!("{local}@{domain}")
}

fn person(generator: &Generator, entity: u64, g: &Group) -> Person {
    let mut rng = stream_rng(generator.seed, TAG_PERSON, entity);
    let dup_kinds: Vec<Variation> = (1..g.size as usize).map(|k| planted(g, k)).collect();
    let first = if dup_kinds.contains(&Variation::Nickname) {
        NICKNAMES
            .choose(&mut rng)
            .map(|(f, _)| *f)
            .unwrap_or("Robert")
    } else {
        FIRST_NAMES.choose(&mut rng).copied().unwrap_or("Alex")
    };
    let last = LAST_NAMES.choose(&mut rng).copied().unwrap_or("Smith");
    let company = companies::identity(generator.seed, employer(generator, entity));
    let (country, city) = if rng.random_bool(0.8) {
        (company.country, company.city)
    } else {
        random_location(&mut rng)
    };
    let phone = phone_in(country, city, &mut rng);
    let jobtitle = JOB_TITLES.choose(&mut rng).copied().unwrap_or("Manager");
    let work_email = work_email(first, last, &company.domain, rng.random_range(0..4));
    let gmail = dup_kinds
        .iter()
        .any(|k| matches!(k, Variation::GmailDots | Variation::PlusTag));
    let domain = if gmail || rng.random_bool(0.5) {
        PERSONAL_DOMAINS[0]
    } else {
        PERSONAL_DOMAINS
            .choose(&mut rng)
            .copied()
            .unwrap_or("gmail.com")
    };
    let (f, l) = (noise::ascii_fold(first), noise::ascii_fold(last));
    let personal_local = match rng.random_range(0..4) {
        0 => format!("{f}{l}"),
        1 => format!("{f}.{l}"),
        2 => format!("{f}{l}{}", rng.random_range(10..100)),
        _ => format!("{}{l}{}", &f[..f.len().min(1)], rng.random_range(1..1000)),
    };
    Person {
        first,
        last,
        country,
        city,
        phone,
        jobtitle,
        work_email,
        personal_email: format!("{personal_local}@{domain}"),
        prefers_personal: gmail || rng.random_bool(0.25),
        erp_id: format!("ERP-{}", 1_000_000 + entity),
        company,
    }
}

/// One record's view of the person, as typed into one system.
struct View {
    first: String,
    last: String,
    email: Option<String>,
    phone: Option<String>,
    company: Option<String>,
    jobtitle: Option<String>,
    city: Option<String>,
    country: Option<String>,
}

fn origin(rng: &mut impl Rng) -> Source {
    match rng.random_range(0..20) {
        0..=9 => Source::Crm,
        10..=13 => Source::Erp,
        14..=17 => Source::Form,
        _ => Source::MarketingSync,
    }
}

fn company_as_typed(c: &CompanyIdentity, rng: &mut impl Rng) -> String {
    if rng.random_bool(0.6) {
        c.base.clone()
    } else {
        c.full_name()
    }
}

pub fn records(generator: &Generator, entity: u64, g: &Group) -> Vec<Generated> {
    let seed = generator.seed;
    let plan = &generator.contact_plan;
    let who = person(generator, entity, g);
    let positions = plan.group_positions(g);

    // Colleagues on a team mailbox: the second takes the first one's employer and mailbox.
    let shared = match g.kind {
        GroupKind::SharedMailbox { second } => {
            let owner = if second { entity - 1 } else { entity };
            let company = companies::identity(seed, employer(generator, owner));
            let mut rng = stream_rng(seed, TAG_MAILBOX, owner);
            let mailbox = SHARED_MAILBOXES.choose(&mut rng).copied().unwrap_or("info");
            let switchboard = rng.random_bool(0.5);
            Some((company, mailbox, switchboard))
        }
        _ => None,
    };

    let mut out = Vec::with_capacity(positions.len());
    let mut first_source = None;
    let mut erp_synced_before = false;
    for (k, &position) in positions.iter().enumerate() {
        let ordinal = g.first as u64 + k as u64;
        let mut rng = stream_rng(seed, TAG_RECORD, ordinal);
        let mut source = origin(&mut rng);
        if first_source == Some(source) && rng.random_bool(0.7) {
            source = origin(&mut rng);
        }
        first_source.get_or_insert(source);

        let phone_format = if source == Source::Erp {
            PhoneFormat::E164
        } else {
            *PhoneFormat::ALL
                .choose(&mut rng)
                .unwrap_or(&PhoneFormat::International)
        };
        let mut v = View {
            first: who.first.to_string(),
            last: who.last.to_string(),
            email: Some(if who.prefers_personal {
                who.personal_email.clone()
            } else {
                who.work_email.clone()
            }),
            phone: Some(who.phone.format(phone_format)),
            company: Some(company_as_typed(&who.company, &mut rng)),
            jobtitle: Some(who.jobtitle.to_string()),
            city: Some(who.country.cities[who.city].0.to_string()),
            country: Some(who.country.name.to_string()),
        };
        if matches!(source, Source::Form | Source::MarketingSync) && rng.random_bool(0.5) {
            // Forms rarely ask for a phone or job title.
            v.jobtitle = None;
            if rng.random_bool(0.5) {
                v.phone = None;
            }
        }

        match (&g.kind, &shared) {
            (GroupKind::SharedMailbox { .. }, Some((company, mailbox, switchboard))) => {
                v.email = Some(format!("{mailbox}@{}", company.domain));
                v.company = Some(company_as_typed(company, &mut rng));
                if *switchboard {
                    v.phone = Some(company.phone.format(phone_format));
                }
            }
            (GroupKind::ChangedJob, _) if k == 0 => {
                // The older record is from the previous employer.
                let mut rng_old = stream_rng(seed, TAG_PERSON_COMPANY, (1 << 40) | entity);
                let old =
                    companies::identity(seed, rng_old.random_range(0..generator.company_universe));
                v.company = Some(company_as_typed(&old, &mut rng));
                v.email = Some(work_email(who.first, who.last, &old.domain, 0));
                v.jobtitle = JOB_TITLES.choose(&mut rng_old).map(|t| t.to_string());
            }
            (GroupKind::ChangedJob, _) => {
                v.email = Some(work_email(who.first, who.last, &who.company.domain, 0));
            }
            (GroupKind::Duplicates, _) if k > 0 => {
                let mut kinds = vec![planted(g, k)];
                for _ in 0..rng.random_range(0..3) {
                    kinds.push(*VARIATIONS.choose(&mut rng).unwrap_or(&Variation::Case));
                }
                for kind in kinds {
                    vary(&mut v, kind, &who, &mut rng);
                }
            }
            _ => {}
        }

        let created = created_at(position, plan.len(), &mut rng);
        let mut b = Builder::new(ObjectType::Contacts, created);
        b.set("firstname", v.first, created, source);
        b.set("lastname", v.last, created, source);
        for (prop, value) in [
            ("company", v.company),
            ("jobtitle", v.jobtitle),
            ("city", v.city),
            ("country", v.country),
        ] {
            if let Some(value) = value {
                b.set(prop, value, created, source);
            }
        }
        if let Some(email) = v.email {
            if source == Source::Form && rng.random_bool(0.35) {
                // Typed into a form first, then corrected by a sales rep.
                let typed = if rng.random_bool(0.5) {
                    noise::recase(&email, &mut rng)
                } else {
                    noise::typo(&email, &mut rng)
                };
                b.set("email", typed, created, Source::Form);
                let fixed = later(created, 30, &mut rng);
                b.set("email", email, fixed, Source::Crm);
            } else {
                b.set("email", email, created, source);
            }
        }
        if let Some(phone) = &v.phone {
            b.set("phone", phone.clone(), created, source);
        }

        // The ERP: its own records carry its customer id from the start; CRM records synced
        // to it get the id later, and the ERP then rewrites the phone in its own format (or
        // with a newer number). Two CRM copies of one person synced to the same ERP customer
        // is what the id mapping table has to untangle, so every fourth group plants it.
        let force_same_erp = g.kind == GroupKind::Duplicates && g.dup_index % 4 == 1 && k < 2;
        let synced = source == Source::Erp
            || force_same_erp
            || (source == Source::Crm && rng.random_bool(0.35))
            || rng.random_bool(0.05);
        if synced {
            let erp_id = if erp_synced_before && !force_same_erp && rng.random_bool(0.3) {
                // The ERP created a second customer for the same person.
                format!("ERP-{}", 5_000_000 + ordinal)
            } else {
                who.erp_id.clone()
            };
            erp_synced_before = true;
            if source == Source::Erp {
                b.set("erp_customer_id", erp_id, created, Source::Erp);
            } else {
                let at = later(created, 120, &mut rng);
                b.set("erp_customer_id", erp_id, at, Source::Erp);
                if v.phone.is_some() && rng.random_bool(0.6) {
                    let at = later(at, 240, &mut rng);
                    let phone = if rng.random_bool(0.8) {
                        who.phone.format(PhoneFormat::E164)
                    } else {
                        phone_in(who.country, who.city, &mut rng).format(PhoneFormat::E164)
                    };
                    b.set("phone", phone, at, Source::Erp);
                }
            }
        }
        if rng.random_bool(0.3) {
            // A late edit by a sales rep: newer record, older phone.
            let at = late(b.created(), &mut rng);
            let title = JOB_TITLES.choose(&mut rng).copied().unwrap_or("Manager");
            if b.current("jobtitle") != Some(title) {
                b.set("jobtitle", title.to_string(), at, Source::Crm);
            }
        }
        let id = (CONTACT_ID_BASE + position as u64).to_string();
        out.push(Generated {
            record: b.finish(id),
            entity,
        });
    }
    out
}

fn vary(v: &mut View, kind: Variation, who: &Person, rng: &mut impl Rng) {
    match kind {
        Variation::Nickname => {
            if let Some(n) = noise::nickname_variant(who.first, rng) {
                v.first = n.to_string();
            }
        }
        Variation::GmailDots => {
            if let Some(e) = v.email.as_deref().filter(|e| e.ends_with("@gmail.com")) {
                v.email = Some(noise::gmail_dots(e, rng));
            }
        }
        Variation::PlusTag => {
            if let Some(e) = v.email.as_deref().filter(|e| e.ends_with("@gmail.com")) {
                v.email = Some(noise::plus_tag(e, rng));
            }
        }
        Variation::Typo => {
            if rng.random_bool(0.5) {
                v.last = noise::typo(&v.last, rng);
            } else {
                v.first = noise::typo(&v.first, rng);
            }
        }
        Variation::PhoneFormat => {
            let f = PhoneFormat::ALL.choose(rng).unwrap_or(&PhoneFormat::Digits);
            v.phone = Some(who.phone.format(*f));
        }
        Variation::Case => match rng.random_range(0..3) {
            0 => v.first = noise::recase(&v.first, rng),
            1 => v.last = noise::recase(&v.last, rng),
            _ => v.email = v.email.as_deref().map(|e| noise::recase(e, rng)),
        },
        Variation::Whitespace => {
            if rng.random_bool(0.5) {
                v.first = noise::rewhitespace(&v.first, rng);
            } else {
                v.last = noise::rewhitespace(&v.last, rng);
            }
        }
        Variation::MissingFields => match rng.random_range(0..4) {
            0 => v.email = None,
            1 => v.phone = None,
            2 => {
                v.company = None;
                v.jobtitle = None;
            }
            _ => {
                v.city = None;
                v.country = None;
            }
        },
        Variation::CountryAlias => {
            v.country = who.country.aliases.choose(rng).map(|a| a.to_string());
        }
        Variation::OtherEmail => {
            v.email = Some(if v.email.as_deref() == Some(who.work_email.as_str()) {
                who.personal_email.clone()
            } else {
                who.work_email.clone()
            });
        }
    }
}
