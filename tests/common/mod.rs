//! Shared fixtures for the integration tests: a sandbox CRM on loopback seeded with clusters of
//! duplicate contacts, a connector to it, and a workspace pulled from it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dupdesk::config::{self, Config, Secret};
use dupdesk::crm::Connector;
use dupdesk::crm::hubspot::{HubSpotConnector, HubSpotOptions};
use dupdesk::domain::model::{ObjectType, PropertyVersion, Record, parse_ts};
use dupdesk::harness::sandbox::seed::SeedData;
use dupdesk::harness::sandbox::{self, FaultSpec, RateLimit, Sandbox, SandboxOptions};
use dupdesk::store::Store;

pub const TOKEN: &str = "pat-test-token-7f3a9c";

pub fn config() -> Config {
    config::load(&config::Sources::default()).unwrap()
}

pub fn contact(id: u64, props: &[(&str, &str)]) -> Record {
    let ts = parse_ts("2026-01-05T10:00:00.000Z").unwrap();
    let mut properties = BTreeMap::new();
    let mut history = BTreeMap::new();
    for (k, v) in props {
        properties.insert(k.to_string(), Some(v.to_string()));
        history.insert(
            k.to_string(),
            vec![PropertyVersion {
                value: Some(v.to_string()),
                timestamp: ts,
                source_type: "CRM_UI".into(),
                source_id: None,
            }],
        );
    }
    Record {
        object_type: ObjectType::Contacts,
        id: id.to_string(),
        properties,
        history,
        created_at: Some(ts),
        updated_at: Some(ts),
        archived: false,
    }
}

/// A planted cluster: its member ids, in the order given to the sandbox.
#[derive(Debug, Clone)]
pub struct Planted {
    pub ids: Vec<String>,
    /// The ERP ids of the members (None where a member has none).
    pub erp: Vec<Option<String>>,
}

/// `n` clusters: every third has three members, the rest two. Members of a cluster share an ERP
/// id, except every seventh cluster, whose members map to two different ERP customers.
pub fn planted_clusters(n: usize) -> (SeedData, Vec<Planted>) {
    let mut seed = SeedData::default();
    let mut planted = Vec::new();
    let mut next = 1000u64;
    for c in 0..n {
        let size = if c % 3 == 0 { 3 } else { 2 };
        let mut ids = Vec::new();
        let mut erp = Vec::new();
        for m in 0..size {
            next += 1;
            let erp_id = if c % 7 == 0 {
                Some(format!("ERP-{c}-{m}"))
            } else if m == 0 {
                Some(format!("ERP-{c}"))
            } else {
                None
            };
            let email = format!("person{c}@example.com");
            let mut props = vec![
                ("email", email.as_str()),
                ("firstname", if m == 0 { "Bob" } else { "Robert" }),
                ("lastname", "Tester"),
            ];
            let phone = format!("+1 555 01{c:04}");
            if m == 1 {
                props.push(("phone", phone.as_str()));
            }
            if let Some(e) = &erp_id {
                props.push(("erp_customer_id", e.as_str()));
            }
            seed.contacts.push(contact(next, &props));
            ids.push(next.to_string());
            erp.push(erp_id);
        }
        planted.push(Planted { ids, erp });
    }
    (seed, planted)
}

pub async fn start_sandbox(seed: SeedData, limit: RateLimit, faults: FaultSpec) -> Sandbox {
    sandbox::start(SandboxOptions {
        port: 0,
        data: None,
        seed: Some(seed),
        rate_limit: limit,
        search_rate_limit: None,
        faults,
        token: Some(TOKEN.into()),
    })
    .await
    .unwrap()
}

pub fn connector(
    base_url: &str,
    limit: u32,
    interval: Duration,
    timeout: Duration,
) -> Arc<dyn Connector> {
    let mut opts = HubSpotOptions::from_config(&config(), Secret::new(TOKEN));
    opts.base_url = base_url.to_string();
    opts.rate_limit = limit;
    opts.rate_interval = interval;
    opts.timeout = timeout;
    Arc::new(
        HubSpotConnector::new(opts)
            .unwrap()
            .with_backoff(Duration::from_millis(10), Duration::from_millis(200)),
    )
}

pub fn generous() -> RateLimit {
    RateLimit {
        max: 100_000,
        interval: Duration::from_secs(10),
        ..RateLimit::default()
    }
}

/// A workspace in `dir` whose stamps read a stepped clock (one millisecond on at each
/// reading, from now): two stamps the store takes one after the other always differ.
pub fn stepped_workspace(dir: &std::path::Path) -> Store {
    Store::open(dir.join("ws.db"))
        .unwrap()
        .with_clock(dupdesk::store::Clock::stepped(
            chrono::Utc::now(),
            chrono::Duration::milliseconds(1),
        ))
        .unwrap()
}

pub async fn pulled_workspace(dir: &std::path::Path, crm: &dyn Connector) -> Store {
    let store = Store::open(dir.join("ws.db")).unwrap();
    dupdesk::ops::sync::pull(&store, crm, &config(), &|_| {})
        .await
        .unwrap();
    store
}

/// Record an approval of each planted cluster the way the review does: a cluster, its members,
/// and an `approve` decision naming the primary and a field choice, with the cluster approved.
pub async fn approve_all(store: &Store, planted: &[Planted]) -> Vec<i64> {
    let planted = planted.to_vec();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = dupdesk::store::now_ts();
            let mut ids = Vec::new();
            for p in &planted {
                tx.execute(
                    "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, status, created_at, updated_at)
                     VALUES ('contacts', ?1, 'test', 0.99, 0.95, ?2, 'Robert Tester', 'approved', ?3, ?3)",
                    rusqlite::params![format!("fp-{}", p.ids.join("-")), p.ids.len() as i64, now],
                )?;
                let cluster = tx.last_insert_rowid();
                for id in &p.ids {
                    tx.execute(
                        "INSERT INTO cluster_members (cluster_id, rid) SELECT ?1, rid FROM records WHERE object_type = 'contacts' AND id = ?2",
                        rusqlite::params![cluster, id],
                    )?;
                }
                let choices = serde_json::json!({
                    "firstname": {"value": "Robert", "record_id": p.ids[1], "system": "crm", "reason": "test choice"},
                    "jobtitle": {"value": "Steward's pick", "record_id": null, "system": null, "reason": "typed"},
                });
                tx.execute(
                    "INSERT INTO decisions (cluster_id, steward, decided_at, action, primary_id, field_choices, members)
                     VALUES (?1, 'tester', ?2, 'approve', ?3, ?4, ?5)",
                    rusqlite::params![cluster, now, p.ids[0], choices.to_string(), serde_json::to_string(&p.ids)?],
                )?;
                ids.push(cluster);
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
        .unwrap()
}

/// Insert the planted clusters as the matcher would leave them: pending, with the given weakest
/// link per cluster.
pub async fn pending_clusters(store: &Store, planted: &[Planted], weakest: &[f64]) -> Vec<i64> {
    let planted = planted.to_vec();
    let weakest = weakest.to_vec();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let now = dupdesk::store::now_ts();
            let mut ids = Vec::new();
            for (p, w) in planted.iter().zip(&weakest) {
                tx.execute(
                    "INSERT INTO clusters (object_type, fingerprint, matcher, score, weakest, size, label, status, created_at, updated_at)
                     VALUES ('contacts', ?1, 'test', 0.999, ?2, ?3, 'Robert Tester', 'pending', ?4, ?4)",
                    rusqlite::params![format!("fp-{}", p.ids.join("-")), w, p.ids.len() as i64, now],
                )?;
                let cluster = tx.last_insert_rowid();
                for id in &p.ids {
                    tx.execute(
                        "INSERT INTO cluster_members (cluster_id, rid) SELECT ?1, rid FROM records WHERE object_type = 'contacts' AND id = ?2",
                        rusqlite::params![cluster, id],
                    )?;
                }
                ids.push(cluster);
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
        .unwrap()
}

/// A sandbox seeded with `seed` (generous limits, no faults), a connector to it, and a
/// workspace pulled from it in a temp dir: the starting point of most integration tests.
pub struct Fixture {
    pub sandbox: Sandbox,
    pub crm: Arc<dyn Connector>,
    pub dir: tempfile::TempDir,
    pub store: Store,
}

pub async fn fixture(seed: SeedData) -> Fixture {
    fixture_with(seed, &config()).await
}

/// [`fixture`], the workspace pulled with `config` (which may read more properties than the
/// default).
pub async fn fixture_with(seed: SeedData, config: &Config) -> Fixture {
    let sandbox = start_sandbox(seed, generous(), FaultSpec::default()).await;
    let crm = connector(
        &sandbox.base_url(),
        1000,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ws.db")).unwrap();
    dupdesk::ops::sync::pull(&store, crm.as_ref(), config, &|_| {})
        .await
        .unwrap();
    Fixture {
        sandbox,
        crm,
        dir,
        store,
    }
}

/// The real `dupdesk apply` on `ws`, talking to the sandbox at `base_url` as to a HubSpot
/// portal (a one-second timeout, no client-side rate limit), logging into `logs`.
pub fn apply_command(
    ws: &std::path::Path,
    base_url: &str,
    logs: &std::path::Path,
) -> std::process::Command {
    let mut cmd = dupdesk_command(ws, base_url, logs);
    cmd.arg("apply");
    cmd
}

/// The real `dupdesk --workspace WS` (a subcommand to add), talking to the sandbox at
/// `base_url` as to a HubSpot portal.
pub fn dupdesk_command(
    ws: &std::path::Path,
    base_url: &str,
    logs: &std::path::Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dupdesk"));
    cmd.current_dir(logs)
        .env("XDG_CONFIG_HOME", logs.join("config"))
        .arg("--workspace")
        .arg(ws)
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .env("DUPDESK_CRM__KIND", "hubspot")
        .env("DUPDESK_CRM__BASE_URL", base_url)
        .env("DUPDESK_CRM__TIMEOUT_SECS", "1")
        .env("DUPDESK_CRM__RATE_LIMIT", "100000")
        .env("DUPDESK_LOGGING__DIR", logs)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// The executor's options for tests: `concurrency` jobs at once, quick retries.
pub fn quick_exec(concurrency: usize) -> dupdesk::ops::executor::ExecOptions {
    dupdesk::ops::executor::ExecOptions {
        concurrency,
        retry_base: Duration::from_millis(20),
        ..dupdesk::ops::executor::ExecOptions::default()
    }
}

/// A record of type `t` whose values (no history) were set at `ts`.
pub fn record_at(
    t: ObjectType,
    id: u64,
    props: &[(&str, String)],
    ts: chrono::DateTime<chrono::Utc>,
) -> Record {
    Record {
        object_type: t,
        id: id.to_string(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.clone())))
            .collect::<BTreeMap<_, _>>(),
        history: BTreeMap::new(),
        created_at: Some(ts),
        updated_at: Some(ts),
        archived: false,
    }
}

/// Raw HTTP to a sandbox CRM with a bearer token, for the suites that check its answers as
/// HubSpot gives them: each call answers its status and JSON body.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    token: String,
}

impl Client {
    pub fn new(sb: &Sandbox, token: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: sb.base_url(),
            token: token.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub async fn merge(
        &self,
        primary: &str,
        other: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.post(
            "/crm/v3/objects/contacts/merge",
            serde_json::json!({"primaryObjectId": primary, "objectIdToMerge": other}),
        )
        .await
    }

    pub async fn search(
        &self,
        object: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.post(&format!("/crm/v3/objects/{object}/search"), body)
            .await
    }

    /// The sandbox's own counters (`/_sandbox/stats`, no token).
    pub async fn stats(&self) -> serde_json::Value {
        let r = self
            .http
            .get(format!("{}/_sandbox/stats", self.base))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}
