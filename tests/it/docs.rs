//! The `docs/` pages stay true to the program: every key of `config.example.toml` has its row
//! in `docs/configuration.md`, every metric family the library exports its row in
//! `docs/metrics.md`, every command and long flag the real binary's `--help` shows (recursively)
//! its section and row in `docs/cli.md`, and every alert kind its row in `docs/alerts.md`.
//!
//! A missing row fails the test with one line per row, naming the page, the section and the
//! row to add, so that whoever adds a key, a metric, a flag or a kind knows exactly what to
//! write. The matchers are plain functions over text; their own tests below show that each
//! one fails, and says what, on a page that lacks a name.

use std::collections::BTreeMap;

use proxy_renewd::alert::AlertKind;

use crate::helpers::{bin, run};

/// The repository's root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A file of the repository, e.g. `docs/cli.md`.
fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fails with every missing row, one per line.
fn assert_none_missing(what: &str, missing: &[String]) {
    assert!(missing.is_empty(), "{} missing from the docs:\n{}", what, missing.join("\n"));
}

/// Whether `page` has a table row whose first cell is exactly `` `name` `` (followed by ` |`).
fn has_row(page: &str, name: &str) -> bool {
    row(page, name).is_some()
}

/// The table row whose first cell is exactly `` `name` ``.
fn row<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let start = format!("| `{name}` |");
    page.lines().find(|l| l.trim_start().starts_with(&start))
}

// ---------------------------------------------------------------------------------------
// (a) Config keys: config.example.toml -> docs/configuration.md

/// Every `key =` line of a TOML example, commented or not, as `section.key`, in file order.
fn example_keys(toml: &str) -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in toml.lines() {
        let bare = line.trim().trim_start_matches('#').trim();
        if let Some(name) = bare.strip_prefix('[').and_then(|b| b.strip_suffix(']'))
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
        {
            section = name.to_owned();
            continue;
        }
        let Some((key, _)) = bare.split_once('=') else { continue };
        let key = key.trim();
        let is_key = key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_key {
            let full = if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") };
            if !keys.contains(&full) {
                keys.push(full);
            }
        }
    }
    keys
}

/// The environment variable of `section.key`: `alerts.email.to` -> `PROXY_RENEWD_ALERTS__EMAIL__TO`.
fn env_var(key: &str) -> String {
    format!("PROXY_RENEWD_{}", key.to_uppercase().replace('.', "__"))
}

/// What `docs/configuration.md` (`page`) lacks for `keys`: a row per key, naming its
/// environment variable.
fn missing_config_rows(keys: &[String], page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for key in keys {
        let section = key.rsplit_once('.').map_or("", |(s, _)| s);
        let env = env_var(key);
        match row(page, key) {
            None => missing.push(format!(
                "docs/configuration.md: no row for the key `{key}` (in config.example.toml, [{section}]): add \
                 `| `{key}` | TYPE | DEFAULT | `{env}` | WHAT IT DOES, with an example |` to the table under `## [{section}]`"
            )),
            Some(r) if !r.contains(&format!("`{env}`")) => missing.push(format!(
                "docs/configuration.md, row `{key}`: the environment variable `{env}` is not named in its environment column"
            )),
            Some(_) => {}
        }
    }
    missing
}

#[test]
fn every_config_key_of_the_example_is_in_configuration_md() {
    let keys = example_keys(&read("config.example.toml"));
    // The example's keys are read, not assumed: a parser that found none would pass anything.
    for key in ["api.base_url", "api.key_file", "api.max_response_bytes", "alerts.instance", "alerts.email.ca_file"] {
        assert!(keys.iter().any(|k| k == key), "{key} not found in config.example.toml: {keys:?}");
    }
    assert_none_missing("config keys", &missing_config_rows(&keys, &read("docs/configuration.md")));
}

#[test]
fn the_config_matcher_names_a_missing_key_and_a_missing_env_var() {
    let example =
        "[api]\nbase_url = \"x\"\n# key_file = \"y\"\n# The key (prose = not a key line?)\n[alerts.email]\nto = []\n";
    let keys = example_keys(example);
    assert_eq!(keys, ["api.base_url", "api.key_file", "alerts.email.to"]);
    let page = "| `api.base_url` | URL | none | `PROXY_RENEWD_API__BASE_URL` | … |\n\
                | `alerts.email.to` | list | none | `PROXY_RENEWD_ALERTS__TO` | … |\n";
    let missing = missing_config_rows(&keys, page);
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(
        missing[0].starts_with("docs/configuration.md: no row for the key `api.key_file`")
            && missing[0].contains("`PROXY_RENEWD_API__KEY_FILE`")
            && missing[0].contains("under `## [api]`"),
        "{}",
        missing[0]
    );
    assert!(
        missing[1].contains("row `alerts.email.to`") && missing[1].contains("`PROXY_RENEWD_ALERTS__EMAIL__TO`"),
        "{}",
        missing[1]
    );
}

// ---------------------------------------------------------------------------------------
// (b) Metrics: the library's /metrics text -> docs/metrics.md

/// The metric families of a Prometheus text exposition: `(name, type)` from its `# TYPE` lines.
fn exported_families(exposition: &str) -> Vec<(String, String)> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, ty)| (name.to_owned(), ty.trim().to_owned()))
        .collect()
}

/// The name a person sees in a scrape and queries: a counter's samples carry `_total`.
fn sample_name(family: &str, ty: &str) -> String {
    if ty == "counter" && !family.ends_with("_total") { format!("{family}_total") } else { family.to_owned() }
}

/// What `docs/metrics.md` (`page`) lacks for `families`: a row `| `name` | type | … |` each.
fn missing_metric_rows(families: &[(String, String)], page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for (family, ty) in families {
        let name = sample_name(family, ty);
        match row(page, &name) {
            None => missing.push(format!(
                "docs/metrics.md: no row for the metric `{name}` ({ty}, exported on /metrics): add \
                 `| `{name}` | {ty} | LABELS | MEANING |` to the table under `## Every metric`"
            )),
            Some(r) if !r.contains(&format!("| {ty} |")) => missing.push(format!(
                "docs/metrics.md, row `{name}`: its type column should say `{ty}` (the exporter's # TYPE)"
            )),
            Some(_) => {}
        }
    }
    missing
}

/// The metric names `src/metrics.rs` registers (its `"proxy_renewd_…"` literals): a family
/// that no sample of [`exposition_after_a_cycle`] reached is still named here.
fn registered_names() -> Vec<String> {
    let source = read("src/metrics.rs");
    let mut names: Vec<String> = source
        .split("\"proxy_renewd_")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .map(|n| format!("proxy_renewd_{n}"))
        .collect();
    names.dedup();
    names
}

/// What `/metrics` serves once the daemon has done a cycle against the simulator, made a
/// request and delivered an alert: the library's [`Metrics`](proxy_renewd::metrics::Metrics)
/// (the registry `server` encodes) fed through its public observer traits, so that every
/// family has a sample and so its `# TYPE` line (an empty family prints nothing).
async fn exposition_after_a_cycle() -> String {
    use proxy_renewd::api::client::Observer;
    use proxy_renewd::report::CycleObserver;
    const DAY: i64 = 86_400_000;
    let (_sim, setup) = crate::helpers::spawn(&[DAY, 40 * DAY], "").await;
    // An audit cycle: it forecasts (a real one forecasts only with an observer attached).
    let report = setup.cycle_with(true).await;
    assert!(report.forecast.is_some(), "the audit cycle made no forecast");
    let m = proxy_renewd::metrics::Metrics::new();
    m.cycle_started();
    m.cycle_done(&report);
    m.request(proxy_renewd::api::Op::Subscriptions, Some(200), std::time::Duration::from_millis(20));
    m.alerts_delivered(&["auth"], 1, 0, 0);
    m.encode()
}

#[tokio::test]
async fn every_exported_metric_is_in_metrics_md() {
    let exposition = exposition_after_a_cycle().await;
    let families = exported_families(&exposition);
    assert!(
        families.iter().any(|(n, t)| n == "proxy_renewd_renewals" && t == "counter")
            && families.iter().any(|(n, t)| n == "proxy_renewd_subscription_expiry_timestamp_seconds" && t == "gauge")
            && families.iter().any(|(n, t)| n == "proxy_renewd_forecast_renewals" && t == "gauge"),
        "the exposition's # TYPE lines were not found:\n{exposition}"
    );
    let page = read("docs/metrics.md");
    let mut missing = missing_metric_rows(&families, &page);
    // A registered family that this cycle left empty (no # TYPE line): its row, either way.
    let registered = registered_names();
    assert!(registered.len() >= families.len(), "{registered:?}");
    for name in registered.iter().filter(|n| !families.iter().any(|(f, _)| f == *n)) {
        if !has_row(&page, name) && !has_row(&page, &format!("{name}_total")) {
            missing.push(format!(
                "docs/metrics.md: no row for the metric `{name}` (registered in src/metrics.rs): add \
                 `| `{name}` | TYPE | LABELS | MEANING |` (a counter as `{name}_total`) to the table under `## Every metric`"
            ));
        }
    }
    assert_none_missing("metrics", &missing);
}

#[test]
fn the_metric_matcher_names_a_missing_metric_and_a_wrong_type() {
    let exposition = "# HELP a_total x\n# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\n# TYPE c histogram\n";
    let families = exported_families(exposition);
    assert_eq!(families.len(), 3);
    let page = "| `a_total` | counter | none | x |\n| `c` | gauge | none | y |\n";
    let missing = missing_metric_rows(&families, page);
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(missing[0].starts_with("docs/metrics.md: no row for the metric `b` (gauge"), "{}", missing[0]);
    assert!(missing[1].contains("row `c`") && missing[1].contains("`histogram`"), "{}", missing[1]);
}

// ---------------------------------------------------------------------------------------
// (c) Commands and flags: the real binary's --help -> docs/cli.md

/// What one `--help` shows: its subcommands and its long flags with the first line of each
/// flag's description.
#[derive(Debug, Default, PartialEq)]
struct Help {
    commands: Vec<String>,
    flags: Vec<(String, String)>,
}

/// Parses clap's help text (long or short form).
fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut section = "";
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && !line.is_empty() {
            section = line.trim_end_matches(':');
            continue;
        }
        let trimmed = line.trim();
        match section {
            "Commands" => {
                if let Some(name) = trimmed.split_whitespace().next()
                    && line.starts_with("  ")
                    && !line.starts_with("   ")
                {
                    help.commands.push(name.to_owned());
                }
            }
            // A flag's line is indented by 2 (`-h, --help`) or 6 (`      --config`); its
            // description and possible values (`- table: …`) by more.
            "Options" if trimmed.starts_with('-') && line.len() - line.trim_start().len() <= 6 => {
                let Some(at) = trimmed.find("--") else { continue };
                let name: String =
                    trimmed[at + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                // The description: inline after two spaces (short help), else the next line.
                let inline = trimmed[at..].split_once("  ").map(|(_, d)| d.trim().to_owned());
                let next = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.is_empty()).unwrap_or("");
                let desc = inline.filter(|d| !d.is_empty()).unwrap_or_else(|| next.to_owned());
                help.flags.push((name, desc));
            }
            _ => {}
        }
    }
    help
}

/// `proxy-renewd` followed by the command's path, e.g. `proxy-renewd rules set`.
fn shown(path: &[String]) -> String {
    std::iter::once("proxy-renewd".to_owned()).chain(path.iter().cloned()).collect::<Vec<_>>().join(" ")
}

/// The lines of the section of `docs/cli.md` whose heading names `` `title` ``, up to the next
/// heading of the same or a higher level; `None` without such a heading.
fn section<'a>(page: &'a str, title: &str) -> Option<Vec<&'a str>> {
    let wanted = format!("`{title}`");
    let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
    let mut lines = page.lines();
    let heading = lines.by_ref().find(|l| level(l) > 0 && l.contains(&wanted))?;
    let depth = level(heading);
    Some(lines.take_while(|l| !(level(l) > 0 && level(l) <= depth)).collect())
}

/// What `docs/cli.md` (`page`) lacks for the help texts `helps` (keyed by command path, the
/// root `[]` included): a section per command, and in it a row `| `--flag …` | … |` for each
/// long flag the command itself shows. A flag that its parent shows with the same description
/// (a global flag, `api`'s `--show-secrets`) belongs to the parent's section.
fn missing_cli_rows(helps: &BTreeMap<Vec<String>, Help>, page: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, help) in helps {
        let title = shown(path);
        let Some(body) = section(page, &title) else {
            let parent = shown(&path[..path.len().saturating_sub(1)]);
            missing.push(format!(
                "docs/cli.md: no section for the command `{title}` (listed by `{parent} --help`): add a heading \
                 `## `{title}`` with what it does, its options table, what it prints and its exit codes"
            ));
            continue;
        };
        for (flag, desc) in &help.flags {
            if !path.is_empty() && flag == "help" {
                continue; // clap's own, on every command; documented once, at the root.
            }
            let parent = path.len().checked_sub(1).and_then(|n| helps.get(&path[..n]));
            if parent.is_some_and(|p| p.flags.iter().any(|(f, d)| f == flag && d == desc)) {
                continue; // inherited: the parent's section has it.
            }
            let start = format!("| `--{flag}");
            let documented = body.iter().any(|l| {
                l.trim_start().strip_prefix(&start).is_some_and(|rest| rest.starts_with([' ', '`', '=', ',']))
            });
            if !documented {
                missing.push(format!(
                    "docs/cli.md, section `{title}`: no row for `--{flag}` (shown by `{title} --help`: {desc:?}): \
                     add `| `--{flag} …` | WHAT IT DOES |` to its options table"
                ));
            }
        }
    }
    missing
}

/// The real binary's `--help` for `path`.
async fn help_of(path: &[String]) -> Help {
    let mut cmd = bin();
    cmd.args(path).arg("--help");
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "`{} --help` failed: {}", shown(path), out.stderr);
    parse_help(&out.stdout)
}

#[tokio::test]
async fn every_command_and_long_flag_of_the_binary_is_in_cli_md() {
    let mut helps: BTreeMap<Vec<String>, Help> = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let help = help_of(&path).await;
        for c in help.commands.iter().filter(|c| *c != "help") {
            todo.push(path.iter().cloned().chain([c.clone()]).collect());
        }
        helps.insert(path, help);
    }
    // The walk really went down: the root's flags, a nested command and its own flags.
    let rules_set = helps.get(&vec!["rules".to_owned(), "set".to_owned()]).expect("`rules set` was found");
    assert!(rules_set.flags.iter().any(|(f, _)| f == "renew-before"), "{rules_set:?}");
    assert!(helps[&Vec::new()].flags.iter().any(|(f, _)| f == "config"), "{:?}", helps[&Vec::new()]);
    assert!(helps.contains_key(&vec!["purchase".to_owned(), "reconcile".to_owned()]));
    assert_none_missing("commands and flags", &missing_cli_rows(&helps, &read("docs/cli.md")));
}

#[test]
fn the_help_parser_reads_commands_flags_and_descriptions() {
    let text = "About.\n\nUsage: x [OPTIONS] [COMMAND]\n\nCommands:\n  run    The daemon\n  rules  Manage rules\n  help   Print this\n\n\
                Options:\n      --config <PATH>\n          Config file (TOML)\n\n  -h, --help\n          Print help\n\n\
                Without a command: run.\n";
    let help = parse_help(text);
    assert_eq!(help.commands, ["run", "rules", "help"]);
    assert_eq!(
        help.flags,
        [("config".to_owned(), "Config file (TOML)".to_owned()), ("help".to_owned(), "Print help".to_owned())]
    );
    let short =
        parse_help("Options:\n      --max-age <DURATION>  The oldest a last cycle may be\n  -h, --help  Print help\n");
    assert_eq!(short.flags[0], ("max-age".to_owned(), "The oldest a last cycle may be".to_owned()));
    // Possible values and wrapped descriptions are not flags, even when they name one.
    let values = parse_help(
        "Options:\n      --format <FORMAT>\n          Output\n\n          Possible values:\n          - table: --dry-run too\n          --only with once\n",
    );
    assert_eq!(values.flags, [("format".to_owned(), "Output".to_owned())]);
}

#[test]
fn the_cli_matcher_names_a_missing_command_and_a_missing_flag() {
    let flag = |f: &str, d: &str| (f.to_owned(), d.to_owned());
    let mut helps = BTreeMap::new();
    helps.insert(Vec::new(), Help { commands: vec!["rules".into()], flags: vec![flag("config", "Config file")] });
    helps.insert(
        vec!["rules".to_owned()],
        Help { commands: vec!["set".into()], flags: vec![flag("config", "Config file"), flag("help", "Print help")] },
    );
    helps.insert(
        vec!["rules".to_owned(), "set".to_owned()],
        Help {
            commands: vec![],
            flags: vec![flag("config", "Config file"), flag("note", "Free text"), flag("no-coupon", "Send none")],
        },
    );
    helps.insert(vec!["completions".to_owned()], Help::default());
    // `--no-coupon` is documented; `--note` only as a prefix of another flag's row
    // (`--note-file`) and in prose, which do not count.
    let page = "# CLI\n\n## `proxy-renewd`\n\n| `--config PATH` | the file |\n\n## `proxy-renewd rules`\n\nText.\n\n\
                ### `proxy-renewd rules set`\n\n| `--no-coupon` | none |\n| `--note-file F` | x |\nSee `--note`.\n";
    let missing = missing_cli_rows(&helps, page);
    assert_eq!(missing.len(), 2, "{missing:#?}");
    assert!(
        missing[0].starts_with("docs/cli.md: no section for the command `proxy-renewd completions`")
            && missing[0].contains("`## `proxy-renewd completions``"),
        "{}",
        missing[0]
    );
    assert!(
        missing[1].starts_with("docs/cli.md, section `proxy-renewd rules set`: no row for `--note`")
            && missing[1].contains("\"Free text\""),
        "{}",
        missing[1]
    );
    // A flag documented in the parent's section only does not count for a child that has its
    // own (different) description of it.
    let own = BTreeMap::from([
        (Vec::new(), Help { commands: vec!["run".into()], flags: vec![flag("dry-run", "Audit only")] }),
        (vec!["run".to_owned()], Help { commands: vec![], flags: vec![flag("dry-run", "The daemon loop")] }),
    ]);
    let page = "## `proxy-renewd`\n| `--dry-run` | audit |\n## `proxy-renewd run`\nThe daemon.\n";
    let missing = missing_cli_rows(&own, page);
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(missing[0].contains("section `proxy-renewd run`: no row for `--dry-run`"), "{}", missing[0]);
}

// ---------------------------------------------------------------------------------------
// (d) Alert kinds: the library's AlertKind -> docs/alerts.md

/// The names `AlertKind::as_str` gives, read from its source (the match is exhaustive: the
/// compiler keeps it complete), each checked against the library: it parses back (serde) to a
/// kind whose `as_str` is that name.
fn alert_kinds() -> Vec<String> {
    let source = read("src/alert.rs");
    let body = source.split("pub fn as_str").nth(1).expect("AlertKind::as_str in src/alert.rs");
    let body = &body[..body.find("\n    }\n").expect("the end of as_str")];
    let names: Vec<String> = body
        .lines()
        .filter(|l| l.contains("AlertKind::") && l.contains("=>"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();
    for name in &names {
        let kind: AlertKind = serde_json::from_value(serde_json::Value::String(name.clone()))
            .unwrap_or_else(|e| panic!("{name:?} is not an AlertKind: {e}"));
        assert_eq!(kind.as_str(), name, "AlertKind {kind:?}");
    }
    // Every variant of the enum (blank lines aside) has its name.
    let variants = source
        .split("pub enum AlertKind {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .map(|decl| {
            decl.lines()
                .map(str::trim)
                .filter(|l| l.ends_with(',') && l.trim_end_matches(',').chars().all(char::is_alphanumeric))
                .count()
        })
        .unwrap_or(0);
    assert!(variants > 0, "the variants of AlertKind were not read from src/alert.rs");
    assert_eq!(names.len(), variants, "as_str's names {names:?} against {variants} variants of AlertKind");
    names
}

/// What `docs/alerts.md` (`page`) lacks for `kinds`: a row `| `kind` | … |` each.
fn missing_alert_rows(kinds: &[String], page: &str) -> Vec<String> {
    kinds
        .iter()
        .filter(|k| !has_row(page, k))
        .map(|k| {
            format!(
                "docs/alerts.md: no row for the alert kind `{k}` (AlertKind in src/alert.rs): add \
                 `| `{k}` | WHEN IT FIRES | WHAT THE EMAIL SAYS TO DO | ABOUT |` to the table under `## The kinds`"
            )
        })
        .collect()
}

#[test]
fn every_alert_kind_is_in_alerts_md() {
    let kinds = alert_kinds();
    for k in ["insufficient-balance", "forecast", "database", "recovered"] {
        assert!(kinds.iter().any(|n| n == k), "{k} not among {kinds:?}");
    }
    assert_none_missing("alert kinds", &missing_alert_rows(&kinds, &read("docs/alerts.md")));
}

#[test]
fn the_alert_matcher_names_a_missing_kind() {
    let kinds = ["auth".to_owned(), "forecast".to_owned(), "over-budget".to_owned()];
    // `forecast` appears in prose and as a prefix of another row; neither is its row.
    let page = "| `auth` | 401 | check the key | account |\n| `forecast-weekly` | x | y | z |\nThe `forecast` kind.\n\
                | `over-budget` | … | … | … |\n";
    let missing = missing_alert_rows(&kinds, page);
    assert_eq!(
        missing,
        ["docs/alerts.md: no row for the alert kind `forecast` (AlertKind in src/alert.rs): add \
          `| `forecast` | WHEN IT FIRES | WHAT THE EMAIL SAYS TO DO | ABOUT |` to the table under `## The kinds`"]
    );
}
