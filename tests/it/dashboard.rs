//! `contrib/grafana-dashboard.json` and `contrib/prometheus-rules.yml` name only metrics the
//! real binary exports: `run` renews against the simulator (one renewal done, one refused 409,
//! one 402), `/metrics` is scraped, and every `proxy_renewd_…` name in every panel query,
//! template variable and rule must be one of its families (histograms as `_bucket`, `_sum`,
//! `_count`; counters as `_total`). An expression that names no `proxy_renewd_` metric fails
//! too, unless it is one of [`NO_METRIC_OK`]. With promtool (CI has it), every dashboard query
//! must also parse as PromQL, and the rules scan must find as many rules as promtool does.
//! The dashboard must import anywhere: every datasource is the `${DS_PROMETHEUS}` input and
//! every query follows the `job` and `instance` variables.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use proxy_renewd::sim::FaultKind;

use crate::daemon::Instance;
use crate::helpers::{DAY, free_port, sim_with, world};

const DASHBOARD: &str = "contrib/grafana-dashboard.json";
const RULES: &str = "contrib/prometheus-rules.yml";

/// Queries that deliberately name no metric of ours: (file, where).
const NO_METRIC_OK: &[(&str, &str)] = &[
    // Prometheus's own scrape health: the one signal left when the daemon is down.
    (DASHBOARD, "panel \"Up\" target A"),
];

/// One query found in a file.
#[derive(Debug, Clone)]
struct Query {
    file: &'static str,
    /// The panel and target, the template variable, or the rule.
    place: String,
    expr: String,
}

/// The metric names a text exposition makes queryable, from its `# TYPE` lines.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("a TYPE line without a type: {line}"));
        let suffixes: &[&str] = match kind.trim() {
            "counter" if name.ends_with("_total") => &[""],
            "counter" => &["_total"],
            "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The identifiers in a PromQL expression outside string literals (label values and Grafana
/// variables in quotes are not metric names).
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if matches!(c, '"' | '\'' | '`') {
            while let Some(d) = chars.next() {
                if d == '\\' && c != '`' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// What is wrong with the queries: a metric not exported, a name that looks like ours but is
/// misspelt, or a query without any metric of ours.
fn problems(queries: &[Query], exported: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        let ids = identifiers(&q.expr);
        let ours: Vec<&String> = ids.iter().filter(|i| i.starts_with("proxy_renewd_")).collect();
        for id in ids.iter().filter(|i| i.starts_with("proxy") || i.contains("renewd")) {
            if !exported.contains(id) {
                problems.push(format!("{}: {}: {id} is not exported by /metrics (in `{}`)", q.file, q.place, q.expr));
            }
        }
        if ours.is_empty() && !NO_METRIC_OK.contains(&(q.file, q.place.as_str())) {
            problems.push(format!("{}: {}: `{}` names no proxy_renewd_ metric", q.file, q.place, q.expr));
        }
    }
    problems
}

/// Every panel target (rows' nested panels included) and every query variable.
fn dashboard_queries(json: &str) -> Vec<Query> {
    let doc: serde_json::Value = serde_json::from_str(json).expect("the dashboard is JSON");
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = doc["panels"].as_array().expect("panels").iter().collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            let place = format!("panel {title:?} target {}", t["refId"].as_str().unwrap_or("?"));
            out.push(Query { file: DASHBOARD, place, expr: expr.to_owned() });
        }
    }
    for v in doc["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query") {
        let q = &v["query"];
        let expr = q.as_str().or_else(|| q["query"].as_str()).expect("a query variable's query");
        let place = format!("variable {}", v["name"].as_str().unwrap_or("?"));
        out.push(Query { file: DASHBOARD, place, expr: expr.to_owned() });
    }
    out
}

/// Every rule's `expr:` by a line scan (no YAML parser among our dependencies): one line,
/// plain (continued on deeper-indented lines), quoted, or a `|`/`>` block. Each
/// `- alert:`/`- record:` must have exactly one, and an alert a `summary` and a `description`.
fn rules_queries(yaml: &str) -> Vec<Query> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out: Vec<Query> = Vec::new();
    // (where, is an alert, expr: lines, the keys under it)
    let mut rules: Vec<(String, bool, usize, Vec<&str>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let key = line.trim_start().trim_start_matches("- ");
        if let Some(name) = key.strip_prefix("alert:").or_else(|| key.strip_prefix("record:")) {
            rules.push((format!("rule {}", name.trim()), key.starts_with("alert:"), 0, Vec::new()));
        } else if let Some(value) = key.strip_prefix("expr:") {
            let (place, _, count, _) =
                rules.last_mut().unwrap_or_else(|| panic!("{RULES}:{}: expr outside a rule", i + 1));
            *count += 1;
            let indent = line.len() - line.trim_start().len();
            let more = lines[i + 1..].iter().take_while(|l| l.trim().is_empty() || indented(l) > indent);
            let expr = scalar(value.trim(), more.copied().collect());
            out.push(Query { file: RULES, place: place.clone(), expr });
        } else if let Some((_, _, _, keys)) = rules.last_mut() {
            keys.push(key.split(':').next().unwrap_or("").trim());
        }
    }
    for (place, alert, count, keys) in &rules {
        assert_eq!(*count, 1, "{RULES}: {place}: {count} expr: lines found (the scan takes one per rule)");
        if *alert {
            for needed in ["summary", "description"] {
                assert!(keys.contains(&needed), "{RULES}: {place}: no {needed} annotation");
            }
        }
    }
    out
}

fn indented(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A YAML scalar that starts with `first` on the key's line, `more` the deeper lines after it.
fn scalar(first: &str, more: Vec<&str>) -> String {
    let joined = |sep: &str| more.iter().map(|l| l.trim()).collect::<Vec<_>>().join(sep);
    match first {
        "|" | "|-" | "|+" => joined("\n"),
        ">" | ">-" | ">+" => joined(" "),
        f if f.starts_with('"') => {
            assert!(more.is_empty(), "a double-quoted expr over several lines: {f}");
            serde_json::from_str(f).unwrap_or_else(|e| panic!("a double-quoted expr: {f}: {e}"))
        }
        f if f.starts_with('\'') => {
            assert!(
                more.is_empty() && f.len() > 1 && f.ends_with('\''),
                "a single-quoted expr over several lines: {f}"
            );
            f[1..f.len() - 1].replace("''", "'")
        }
        f => {
            let plain = std::iter::once(f).chain(more.iter().map(|l| l.trim())).collect::<Vec<_>>().join(" ");
            plain.split(" #").next().unwrap_or("").trim().to_owned()
        }
    }
}

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_checker_catches_a_misspelt_metric_an_unexported_one_and_a_query_without_ours() {
    let names = exported(
        "# TYPE proxy_renewd_renewals counter\n# TYPE proxy_renewd_api_request_duration_seconds histogram\n# TYPE proxy_renewd_alerts_pending gauge\n",
    );
    let q = |expr: &str| Query { file: RULES, place: "rule Test".into(), expr: expr.into() };
    let good = [
        q("sum by (outcome) (rate(proxy_renewd_renewals_total{job=~\"$job\", x=\"proxy_renewd_nope\"}[5m]))"),
        q("histogram_quantile(0.9, sum by (le) (rate(proxy_renewd_api_request_duration_seconds_bucket[5m])))"),
        q("proxy_renewd_alerts_pending > 0"),
    ];
    assert_eq!(problems(&good, &names), Vec::<String>::new());
    let bad = [
        q("rate(proxy_renewd_renewal_total[5m])"), // misspelt: renewal for renewals
        q("proxy_renewd_renewals"),                // a counter without _total
        q("proxy_renewd_api_request_duration_seconds > 1"), // a histogram without a suffix
        q("proxy_renwed_alerts_pending / proxy_renewd_alerts_pending"), // a misspelt prefix beside a good one
        q("prxy_renewd_alerts_pending > 0"),       // no metric of ours at all
    ];
    let found = problems(&bad, &names);
    for (needle, why) in [
        ("proxy_renewd_renewal_total is not exported", "misspelt"),
        ("proxy_renewd_renewals is not exported", "counter"),
        ("proxy_renewd_api_request_duration_seconds is not exported", "histogram"),
        ("proxy_renwed_alerts_pending is not exported", "prefix"),
        ("`prxy_renewd_alerts_pending > 0` names no proxy_renewd_ metric", "none of ours"),
    ] {
        assert!(found.iter().any(|p| p.contains(needle) && p.contains("rule Test")), "{why}: {needle} in {found:#?}");
    }
}

#[test]
fn the_rules_scan_reads_every_form_of_expr_the_yaml_may_use() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: proxy_renewd_a > 0 # why\n        annotations:\n          summary: s\n          description: d\n      - record: b:c\n        expr: |\n          sum(\n            proxy_renewd_b)\n      - record: c\n        expr: \"proxy_renewd_c{x=\\\"y\\\"}\"\n      - record: d\n        expr: 'proxy_renewd_d{x=''y''}'\n      - record: e\n        expr: proxy_renewd_e\n          / proxy_renewd_f\n";
    let exprs: Vec<String> = rules_queries(yaml).into_iter().map(|q| format!("{}: {}", q.place, q.expr)).collect();
    assert_eq!(
        exprs,
        [
            "rule A: proxy_renewd_a > 0",
            "rule b:c: sum(\nproxy_renewd_b)",
            "rule c: proxy_renewd_c{x=\"y\"}",
            "rule d: proxy_renewd_d{x='y'}",
            "rule e: proxy_renewd_e / proxy_renewd_f"
        ]
    );
    let no_description = "      - alert: A\n        expr: proxy_renewd_a\n        annotations:\n          summary: s\n";
    assert!(std::panic::catch_unwind(|| rules_queries(no_description)).is_err(), "an alert without a description");
    let no_expr = "      - alert: A\n        annotations:\n          summary: s\n          description: d\n";
    assert!(std::panic::catch_unwind(|| rules_queries(no_expr)).is_err(), "a rule without an expr");
}

/// `run` against a simulator whose balance pays one renewal of three due: the first gets a
/// 409 (fault), the second renews, the third gets a 402; one cycle (at start-up, the cron
/// is yearly), then `/metrics` as scraped.
async fn scrape_after_a_renewal_a_409_and_a_402() -> String {
    let mut state = world(&[DAY, 2 * DAY, 2 * DAY + DAY / 2]);
    state.balance_cents = 1500;
    let sim = sim_with(state).await;
    sim.fault("renew", FaultKind::StatusBefore { status: 409 }, 1);
    let port = free_port();
    // One renewal at a time, so that the 409, the renewal and the 402 come in that order.
    let inst = Instance::with(&sim, "0 0 0 1 1 *", &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut cmd = inst.cmd(&["run"]);
    cmd.env("PROXY_RENEWD_API__MAX_CONCURRENCY", "1").stdout(Stdio::null()).stderr(Stdio::null());
    let mut daemon = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if value(&text, "proxy_renewd_last_successful_cycle_timestamp_seconds").is_some_and(|v| v > 0.0) {
            daemon.kill().await.unwrap();
            return text;
        }
        assert!(Instant::now() < deadline, "no cycle within 30 s; last scrape:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// promtool's count of rules in `path` (`check rules` also proves it valid; `names` says
/// which query each rule is, for the failure); `None` without promtool, which only a run
/// outside CI may lack.
fn promtool_rules(path: &Path, names: &str) -> Option<usize> {
    let Ok(out) = std::process::Command::new("promtool").arg("check").arg("rules").arg(path).output() else {
        assert!(std::env::var_os("CI").is_none(), "promtool is missing, but CI must check the queries with it");
        return None;
    };
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules {}: {said}{names}", path.display());
    let n = said.split("SUCCESS: ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok());
    Some(n.unwrap_or_else(|| panic!("no rule count in: {said}")))
}

/// A template variable's `label_values(SELECTOR, label)` (Grafana's, not PromQL) as the
/// selector Prometheus is asked for; anything else as it is.
fn promql_of(expr: &str) -> &str {
    let inner = expr.trim().strip_prefix("label_values(").and_then(|e| e.strip_suffix(')'));
    inner.and_then(|e| e.rsplit_once(',')).map_or(expr, |(selector, _)| selector.trim())
}

/// Each dashboard query as a recording rule, Grafana's variables replaced, for promtool to
/// parse: a query Prometheus would reject fails here, naming its panel.
fn dashboard_as_rules(queries: &[Query]) -> String {
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let expr = ["$__rate_interval", "$__interval", "$__range"]
            .iter()
            .fold(promql_of(&q.expr).to_owned(), |e, v| e.replace(v, "5m"))
            .replace("$job", ".+")
            .replace("$instance", ".+");
        assert!(!expr.contains('$'), "{}: {}: a Grafana variable this test does not know: {expr}", q.file, q.place);
        let expr = serde_json::to_string(&expr).unwrap();
        yaml += &format!("      - record: dashboard:query_{i}\n        expr: {expr}\n");
    }
    yaml
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_rules_name_is_exported_by_a_real_scrape() {
    let text = scrape_after_a_renewal_a_409_and_a_402().await;
    // The cycle made the labelled series the queries name.
    for (series, want) in [
        ("proxy_renewd_api_requests_total{op=\"renew\",status=\"409\"}", 1.0),
        ("proxy_renewd_api_requests_total{op=\"renew\",status=\"200\"}", 1.0),
        ("proxy_renewd_api_requests_total{op=\"renew\",status=\"402\"}", 1.0),
        ("proxy_renewd_renewals_total{outcome=\"succeeded\"}", 1.0),
        ("proxy_renewd_renewals_total{outcome=\"refused\"}", 2.0),
        ("proxy_renewd_renewal_spend_cents_total", 1200.0),
        // The 409 and the 402 are a person's to look at; the renewed one is not.
        ("proxy_renewd_subscriptions_needing_attention", 2.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
    let names = exported(&text);
    assert!(names.contains("proxy_renewd_api_request_duration_seconds_bucket"), "{names:?}");

    let dashboard = dashboard_queries(&repo_file(DASHBOARD));
    assert!(dashboard.len() >= 20 && dashboard.iter().any(|q| q.place == "variable instance"), "{dashboard:#?}");
    let rules = rules_queries(&repo_file(RULES));
    let rules_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(RULES);
    if let Some(n) = promtool_rules(&rules_path, "") {
        assert_eq!(rules.len(), n, "the line scan found {} rules in {RULES}, promtool {n}", rules.len());
        let dir = tempfile::tempdir().unwrap();
        let as_rules = dir.path().join("dashboard-queries.yml");
        std::fs::write(&as_rules, dashboard_as_rules(&dashboard)).unwrap();
        let names: String =
            dashboard.iter().enumerate().map(|(i, q)| format!("\ndashboard:query_{i} is {}", q.place)).collect();
        assert_eq!(promtool_rules(&as_rules, &names), Some(dashboard.len()), "every dashboard query parses as PromQL");
    }
    let all: Vec<Query> = dashboard.into_iter().chain(rules).collect();
    let found = problems(&all, &names);
    assert!(found.is_empty(), "queries naming what /metrics does not export:\n{}", found.join("\n"));
}

/// Every datasource reference in the dashboard (panels, targets, variables): all must be the
/// `${DS_PROMETHEUS}` input, so the file imports on any Grafana, not only the one it came from.
fn datasources(v: &serde_json::Value, at: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if k == "datasource" && child["type"] != "grafana" {
                    out.push((at.to_owned(), child.clone()));
                }
                datasources(child, &format!("{at}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasources(child, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_dashboard_imports_on_any_grafana_with_job_and_instance_variables() {
    let doc: serde_json::Value = serde_json::from_str(&repo_file(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(doc["__inputs"][0]["name"], "DS_PROMETHEUS", "{DASHBOARD}: the datasource input");
    assert_eq!(doc["__inputs"][0]["pluginId"], "prometheus");
    assert!(doc["schemaVersion"].as_u64().is_some_and(|v| (36..=41).contains(&v)), "{DASHBOARD}: schemaVersion");
    assert!(doc["id"].is_null(), "{DASHBOARD}: an exported dashboard has no id (Grafana assigns one)");
    let mut refs = Vec::new();
    datasources(&doc, "dashboard", &mut refs);
    assert!(refs.len() > 20, "{refs:#?}");
    let ours = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let wrong: Vec<_> = refs.iter().filter(|(_, ds)| *ds != ours).collect();
    assert!(wrong.is_empty(), "{DASHBOARD}: datasources other than ${{DS_PROMETHEUS}}: {wrong:#?}");
    let vars: Vec<&str> =
        doc["templating"]["list"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(vars, ["job", "instance"]);
    let mut ids: Vec<u64> = Vec::new();
    let mut stack: Vec<&serde_json::Value> = doc["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        ids.push(p["id"].as_u64().unwrap_or_else(|| panic!("{DASHBOARD}: panel {} has no id", p["title"])));
        for t in p["targets"].as_array().into_iter().flatten().filter_map(|t| t["expr"].as_str()) {
            assert!(
                t.contains(r#"job=~"$job", instance=~"$instance""#),
                "{DASHBOARD}: panel {}: {t} ignores $job/$instance",
                p["title"]
            );
        }
    }
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{DASHBOARD}: panel ids repeat: {ids:?}");
}
