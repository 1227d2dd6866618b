//! First contact and the installed service run by hand: with no config file found and none
//! named, a command that would create or change state refuses and says where it looked and
//! how to start, and a read-only view says the same on stderr and creates nothing; a
//! config laid out as the Debian package installs it (`/etc/proxy-renewd/config.toml` with
//! `key_file = "api-key"` beside it) works from a shell, where systemd's
//! `$CREDENTIALS_DIRECTORY` is not set.

use crate::helpers::{DAY, KEY, bin, run, sim_with, world};

/// The binary in an empty directory with no config file and no `PROXY_RENEWD_*` variable:
/// a first run.
fn first_run(dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = bin();
    cmd.env_remove("PROXY_RENEWD_CONFIG").current_dir(dir);
    cmd
}

/// Every file under `dir`.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn system_config_exists() -> bool {
    let exists = std::path::Path::new("/etc/proxy-renewd/config.toml").exists();
    if exists {
        eprintln!("SKIPPED: /etc/proxy-renewd/config.toml exists on this machine, so no run here is a first run");
    }
    exists
}

#[tokio::test]
async fn a_first_run_refuses_to_change_state_and_says_how_to_start() {
    if system_config_exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["rules", "set", "abc", "--disable"],
        vec!["rules", "remove", "abc"],
        vec!["renew", "abc", "--yes"],
        vec!["once"],
        vec!["run"],
        vec!["purchase", "k17m3q5v7n9p1r2t4w6y8z0a", "--yes"],
        vec!["switch-network", "abc", "n1", "--yes"],
        vec!["change-credentials", "abc", "--yes"],
        vec!["alerts", "test"],
    ] {
        let out = run({
            let mut cmd = first_run(dir.path());
            cmd.args(&args);
            cmd
        })
        .await;
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        let here = dir.path().join("proxy-renewd.toml");
        for needle in [
            "no config file found",
            here.to_str().unwrap(),
            "/etc/proxy-renewd/config.toml",
            "proxy-renewd demo",
            "config.example.toml",
            "did nothing",
        ] {
            assert!(out.stderr.contains(needle), "{args:?} should say {needle:?}: {}", out.stderr);
        }
        assert_eq!(files_in(dir.path()), Vec::<String>::new(), "{args:?} created a file");
    }
}

#[tokio::test]
async fn a_first_run_read_only_view_says_so_and_creates_nothing() {
    if system_config_exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (args, code) in [
        (vec!["rules", "list"], 0),
        (vec!["rules", "list", "--format", "json"], 0),
        (vec!["alerts", "list"], 0),
        (vec!["history"], 0),
        (vec!["health"], 1),
        // An audit needs the provider: the note, then the error that says which key to set.
        (vec!["--dry-run"], 1),
    ] {
        let out = run({
            let mut cmd = first_run(dir.path());
            cmd.args(&args);
            cmd
        })
        .await;
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("note: no config file found"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("proxy-renewd demo"), "{args:?}: {}", out.stderr);
        assert_eq!(files_in(dir.path()), Vec::<String>::new(), "{args:?} created a file");
    }
    // The rules list still shows the defaults it would apply.
    let out = run({
        let mut cmd = first_run(dir.path());
        cmd.args(["rules", "list"]);
        cmd
    })
    .await;
    assert!(out.stdout.contains("(defaults)"), "{}", out.stdout);
}

#[tokio::test]
async fn a_container_configured_by_its_environment_alone_is_no_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("state.db").display());
    let out = run({
        let mut cmd = first_run(dir.path());
        cmd.args(["rules", "set", "abc", "--disable"]).env("PROXY_RENEWD_DATABASE__URL", &db);
        cmd
    })
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("no config file found"), "{}", out.stderr);
    assert!(dir.path().join("state.db").exists());
    // A log setting alone configures nothing.
    let out = run({
        let mut cmd = first_run(dir.path());
        cmd.args(["rules", "set", "abc", "--enable"]).env("PROXY_RENEWD_LOG__FORMAT", "json");
        cmd
    })
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Nor do the test suite's own variables.
    let out = run({
        let mut cmd = first_run(dir.path());
        cmd.args(["rules", "set", "abc", "--enable"]).env("PROXY_RENEWD_TEST_ENGINE", "postgres");
        cmd
    })
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no config file found"), "{}", out.stderr);
}

#[tokio::test]
async fn the_installed_layout_works_by_hand_without_credentials_directory() {
    use std::os::unix::fs::PermissionsExt;
    let sim = sim_with(world(&[DAY, 10 * DAY])).await;
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/proxy-renewd");
    let state = root.path().join("var/lib/proxy-renewd");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    // The state directory belongs to the service user (here `nobody`, when the test runs as
    // root): what root creates in it must end up that user's too.
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    }
    let config = etc.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"{}\"\nkey_file = \"api-key\"\ntimeout = \"2s\"\n[ledger]\nreconcile_after = \"6s\"\n[database]\nurl = \"sqlite://{}\"\n",
            sim.base_url(),
            state.join("proxy-renewd.db").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(etc.join("api-key"), format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(etc.join("api-key"), std::fs::Permissions::from_mode(0o640)).unwrap();
    // Elsewhere: a shell in another directory, no $CREDENTIALS_DIRECTORY.
    let elsewhere = tempfile::tempdir().unwrap();
    let by_hand = |args: &[&str]| {
        let mut cmd = bin();
        cmd.arg("--config").arg(&config).args(args).current_dir(elsewhere.path());
        cmd
    };
    let out = run(by_hand(&["--dry-run"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("sub0") && out.stdout.contains("sub1"), "{}", out.stdout);
    assert!(!out.stderr.contains("other users can read it"), "the config holds no secret: {}", out.stderr);
    assert_eq!(sim.calls_of("renew").len(), 0);

    let out = run(by_hand(&["renew", "sub0", "--yes"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sim.calls_of("renew").len(), 1);
    assert!(state.join("proxy-renewd.db").exists(), "the ledger is the installed one");

    let out = run(by_hand(&["history", "--format", "json"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ledger"][0]["subscription_id"], "sub0", "{doc}");
    assert_eq!(files_in(elsewhere.path()), Vec::<String>::new(), "nothing written in the working directory");
    let out = run(by_hand(&["once"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    if as_root {
        use std::os::unix::fs::MetadataExt;
        let owners: Vec<(String, u32)> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().uid())
            })
            .collect();
        assert!(owners.iter().any(|(name, _)| name == "proxy-renewd.db.lock"), "{owners:?}");
        assert!(owners.iter().all(|(_, uid)| *uid == 65534), "root left files the service cannot open: {owners:?}");
    } else {
        eprintln!("not root: the hand-over of root-created database files is not exercised");
    }

    // Under systemd, $CREDENTIALS_DIRECTORY wins: a wrong key there is used and refused.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("api-key"), "rk_not_the_key_0000000\n").unwrap();
    let mut cmd = by_hand(&["api", "plans"]);
    cmd.env("CREDENTIALS_DIRECTORY", creds.path());
    let out = run(cmd).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    // A key file that is missing says where a relative one is looked for.
    std::fs::remove_file(etc.join("api-key")).unwrap();
    let out = run(by_hand(&["api", "plans"])).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&etc.join("api-key").display().to_string())
            && out.stderr.contains("the config file's directory"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_new_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let out = run({
        let mut cmd = bin();
        // A shell's usual umask: without care the ledger would be world-readable.
        cmd.args(["rules", "set", "abc", "--disable"])
            .env("PROXY_RENEWD_DATABASE__URL", format!("sqlite://{}", db.display()));
        cmd
    })
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}
