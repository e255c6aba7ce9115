//! Company identities (a pure function of seed and entity number, so contacts can name their
//! employer) and company records with planted variations: name case and legal form, typos,
//! web-address spellings, phone formats, missing fields, country spellings.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::build::{Builder, Source, created_at, late, later};
use super::names::{COMPANY_EXTRAS, COMPANY_INDUSTRIES, COMPANY_STEMS, COUNTRIES, Country};
use super::noise::{self, Phone, PhoneFormat};
use super::plan::{Group, GroupKind, TAG_COMPANY, TAG_RECORD, stream_rng};
use super::{COMPANY_ID_BASE, Generated, Generator};
use crate::domain::model::ObjectType;

/// What is true about a company, before anyone types it into a system.
#[derive(Debug, Clone)]
pub struct CompanyIdentity {
    /// The name without its legal form: "Acme Robotics".
    pub base: String,
    pub legal_suffix: &'static str,
    pub domain: String,
    pub country: &'static Country,
    pub city: usize,
    pub phone: Phone,
    pub erp_id: String,
}

impl CompanyIdentity {
    pub fn full_name(&self) -> String {
        noise::with_suffix(&self.base, self.legal_suffix)
    }
    pub fn city_name(&self) -> &'static str {
        self.country.cities[self.city].0
    }
}

/// A subscriber number of the city's length, drawn fresh.
pub fn phone_in(country: &'static Country, city: usize, rng: &mut impl Rng) -> Phone {
    let (_, area, digits) = country.cities[city];
    let mut subscriber = String::with_capacity(digits as usize);
    // A leading 0 or 1 would read as a trunk or service prefix.
    subscriber.push(char::from(b'2' + rng.random_range(0..8u8)));
    for _ in 1..digits {
        subscriber.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    Phone {
        calling_code: country.calling_code,
        trunk: country.trunk,
        area,
        subscriber,
    }
}

pub fn random_location(rng: &mut impl Rng) -> (&'static Country, usize) {
    // The United States and Germany are over-weighted, like a typical customer base.
    let country = match rng.random_range(0..10) {
        0..=2 => &COUNTRIES[0],
        3 => &COUNTRIES[2],
        _ => COUNTRIES.choose(rng).unwrap_or(&COUNTRIES[0]),
    };
    (country, rng.random_range(0..country.cities.len()))
}

/// Company `j`: names are a mixed-radix reading of `j`, so no two companies share one.
pub fn identity(seed: u64, j: u64) -> CompanyIdentity {
    let mut rng = stream_rng(seed, TAG_COMPANY, j);
    let (s, i, e) = (
        COMPANY_STEMS.len() as u64,
        COMPANY_INDUSTRIES.len() as u64,
        COMPANY_EXTRAS.len() as u64 + 1,
    );
    let stem = COMPANY_STEMS[((j + seed) % s) as usize];
    let q = j / s;
    let industry = COMPANY_INDUSTRIES[((q + j % s) % i) as usize];
    let extra = (q / i) % e;
    let number = q / i / e;
    let mut base = format!("{stem} {industry}");
    if extra > 0 {
        base.push(' ');
        base.push_str(COMPANY_EXTRAS[extra as usize - 1]);
    }
    if number > 0 {
        base.push_str(&format!(" {}", number + 1));
    }
    let (country, city) = random_location(&mut rng);
    let domain = format!("{}.{}", noise::ascii_fold(&base), country.tld);
    let phone = phone_in(country, city, &mut rng);
    CompanyIdentity {
        base,
        legal_suffix: country.legal_suffix,
        domain,
        country,
        city,
        phone,
        erp_id: format!("ERP-A{}", 100_000 + j),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variation {
    NameCase,
    LegalSuffix,
    NameTypo,
    Domain,
    PhoneFormat,
    MissingFields,
    CountryAlias,
    Whitespace,
}

const VARIATIONS: [Variation; 8] = [
    Variation::LegalSuffix,
    Variation::Domain,
    Variation::NameCase,
    Variation::PhoneFormat,
    Variation::NameTypo,
    Variation::MissingFields,
    Variation::CountryAlias,
    Variation::Whitespace,
];

fn origin(rng: &mut impl Rng) -> Source {
    match rng.random_range(0..20) {
        0..=9 => Source::Crm,
        10..=16 => Source::Erp,
        _ => Source::MarketingSync,
    }
}

pub fn records(generator: &Generator, entity: u64, g: &Group) -> Vec<Generated> {
    debug_assert!(matches!(g.kind, GroupKind::Single | GroupKind::Duplicates));
    let seed = generator.seed;
    let plan = &generator.company_plan;
    let who = identity(seed, entity);
    let positions = plan.group_positions(g);
    let mut out = Vec::with_capacity(positions.len());
    let mut first_source = None;
    for (k, &position) in positions.iter().enumerate() {
        let ordinal = g.first as u64 + k as u64;
        let mut rng = stream_rng(seed, TAG_RECORD, (1 << 40) | ordinal);
        let mut source = origin(&mut rng);
        if first_source == Some(source) && rng.random_bool(0.7) {
            // Copies mostly arrive through another system than the first record.
            source = origin(&mut rng);
        }
        first_source.get_or_insert(source);

        let mut name = who.full_name();
        let mut domain = Some(who.domain.clone());
        let mut phone = Some(
            who.phone.format(
                *PhoneFormat::ALL
                    .choose(&mut rng)
                    .unwrap_or(&PhoneFormat::International),
            ),
        );
        let mut city = Some(who.city_name().to_string());
        let mut country = Some(who.country.name.to_string());
        if source == Source::Erp {
            phone = Some(who.phone.format(PhoneFormat::E164));
            if rng.random_bool(0.3) {
                // ERP systems like their names in capitals without punctuation.
                name = name.to_uppercase().replace(['.', ','], "");
            }
        }
        if k > 0 {
            let mut planted = vec![VARIATIONS[(g.dup_index as usize + k - 1) % VARIATIONS.len()]];
            for _ in 0..rng.random_range(0..3) {
                planted.push(*VARIATIONS.choose(&mut rng).unwrap_or(&Variation::Domain));
            }
            for v in planted {
                match v {
                    Variation::NameCase => name = noise::recase(&name, &mut rng),
                    Variation::LegalSuffix => {
                        let suffix = noise::legal_suffix_variant(who.legal_suffix, &mut rng);
                        name = noise::with_suffix(&who.base, suffix);
                    }
                    Variation::NameTypo => name = noise::typo(&name, &mut rng),
                    Variation::Domain => {
                        domain = domain.map(|d| noise::domain_variant(&d, &mut rng));
                    }
                    Variation::PhoneFormat => {
                        let f = PhoneFormat::ALL
                            .choose(&mut rng)
                            .unwrap_or(&PhoneFormat::Digits);
                        phone = Some(who.phone.format(*f));
                    }
                    Variation::MissingFields => match rng.random_range(0..3) {
                        0 => domain = None,
                        1 => phone = None,
                        _ => {
                            city = None;
                            country = None;
                        }
                    },
                    Variation::CountryAlias => {
                        country = who.country.aliases.choose(&mut rng).map(|a| a.to_string());
                    }
                    Variation::Whitespace => name = noise::rewhitespace(&name, &mut rng),
                }
            }
        }

        let created = created_at(position, plan.len(), &mut rng);
        let mut b = Builder::new(ObjectType::Companies, created);
        b.set("name", name, created, source);
        for (prop, value) in [("domain", domain), ("city", city), ("country", country)] {
            if let Some(v) = value {
                b.set(prop, v, created, source);
            }
        }
        if let Some(p) = &phone {
            b.set("phone", p.clone(), created, source);
        }
        // The ERP: records it created carry its id from the start; some CRM records are
        // synced to it later, and then the ERP rewrites the phone in its own format.
        if source == Source::Erp {
            b.set("erp_customer_id", who.erp_id.clone(), created, source);
        } else if rng.random_bool(0.3) {
            let at = later(created, 90, &mut rng);
            b.set("erp_customer_id", who.erp_id.clone(), at, Source::Erp);
            if phone.is_some() && rng.random_bool(0.5) {
                let at = later(at, 200, &mut rng);
                b.set(
                    "phone",
                    who.phone.format(PhoneFormat::E164),
                    at,
                    Source::Erp,
                );
            }
        }
        if rng.random_bool(0.25) {
            // Someone in sales tidies the record late in the data's life.
            let at = late(created, &mut rng);
            b.set("city", who.city_name().to_string(), at, Source::Crm);
        }
        let id = (COMPANY_ID_BASE + position as u64).to_string();
        out.push(Generated {
            record: b.finish(id),
            entity,
        });
    }
    out
}
