//! What the benchmark binaries share: reading their size argument, describing the machine,
//! the process's peak memory, and the sandbox's own request counts. Measuring only: nothing
//! here may change what is measured.
#![allow(dead_code)]

use anyhow::{Context, Result, bail};

/// The bearer token the benchmarks' sandbox accepts.
pub const TOKEN: &str = "pat-bench-token";

/// The positional arguments after `cargo bench --bench NAME --`, skipping the flags cargo adds
/// itself (`--bench`).
pub fn positional_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// The `index`-th positional argument as a positive count, or `default` when absent.
pub fn count_arg(index: usize, name: &str, default: usize) -> Result<usize> {
    match positional_args().get(index) {
        None => Ok(default),
        Some(s) => {
            let n: usize = s.replace(['_', ','], "").parse().with_context(|| {
                format!("argument {}: {name} must be a count, not {s:?}", index + 1)
            })?;
            if n == 0 {
                bail!("argument {}: {name} must be at least 1", index + 1);
            }
            Ok(n)
        }
    }
}

/// "2 CPUs (model name)", from what the OS says.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let profile = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    format!("{cpus} CPUs ({model}), {profile}")
}

/// A `/proc/self/status` field in kB (`VmHWM`: peak resident set; `VmRSS`: current).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Reset the peak resident set (`VmHWM`) to the current one, so that the next reading is the
/// peak of what runs from now on (Linux 4.0+: writing 5 to `/proc/self/clear_refs`).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a (no /proc)".into())
}

/// The sandbox's answers so far, by HTTP status (`GET /_sandbox/stats`).
pub async fn sandbox_status_counts(
    base_url: &str,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let stats: serde_json::Value = reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await
        .context("asking the sandbox for its stats")?
        .json()
        .await
        .context("reading the sandbox's stats")?;
    let by_status = stats
        .get("by_status")
        .and_then(|v| v.as_object())
        .context("the sandbox's stats have no by_status")?;
    Ok(by_status
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect())
}

/// Counts in `after` minus those in `before`, dropping statuses that did not occur.
pub fn status_delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

pub fn format_counts(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} × {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 12345 → "12,345".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
