//! What the Debian package ships, checked without building it (CI builds, installs and purges
//! the real `.deb`): the manual pages and completions the real binary generates, and the
//! package metadata's files.

use crate::helpers::{bin, run};

#[tokio::test]
async fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = bin();
        cmd.args(["completions", shell]);
        let out = run(cmd).await;
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for word in ["proxy-renewd", "switch-network", "change-credentials", "reconcile", "renew-before"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let mut cmd = bin();
    cmd.args(["completions", "tcsh"]);
    let out = run(cmd).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("bash") && out.stderr.contains("fish"), "the error lists the shells: {}", out.stderr);
}

#[tokio::test]
async fn bash_completes_subcommands_and_their_flags() {
    let mut cmd = bin();
    cmd.args(["completions", "bash"]);
    let out = run(cmd).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("proxy-renewd.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // What bash's programmable completion calls: the function, with COMP_WORDS and COMP_CWORD.
    let complete = |words: &str, cword: usize, cur: &str, prev: &str| {
        let line = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _proxy__renewd proxy-renewd '{cur}' '{prev}'; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash").args(["-c", &line]).output().expect("bash runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let top = complete("proxy-renewd ''", 1, "", "proxy-renewd");
    assert!(top.contains("rules") && top.contains("switch-network"), "{top}");
    let rules = complete("proxy-renewd rules ''", 2, "", "rules");
    assert!(rules.split(' ').any(|w| w == "set") && rules.split(' ').any(|w| w == "remove"), "{rules}");
    let flag = complete("proxy-renewd rules set abc --pl", 4, "--pl", "abc");
    assert_eq!(flag, "--plan");
    let shells = complete("proxy-renewd completions ''", 2, "", "completions");
    assert!(shells.contains("fish"), "{shells}");
}

#[tokio::test]
async fn manual_pages_one_per_command() {
    let mut cmd = bin();
    cmd.arg("manpage");
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH proxy-renewd 1"), "{}", &out.stdout[..200.min(out.stdout.len())]);
    assert!(out.stdout.contains("switch\\-network"), "the page lists the commands");

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["manpage", "--dir"]).arg(dir.path());
    let out = run(cmd).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in
        ["proxy-renewd.1", "proxy-renewd-rules-set.1", "proxy-renewd-purchase-reconcile.1", "proxy-renewd-manpage.1"]
    {
        assert!(out.stdout.lines().any(|l| l == page), "{page} not listed: {}", out.stdout);
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.starts_with(".ie") && text.contains(".SH NAME"), "{page}");
    }
    let page = std::fs::read_to_string(dir.path().join("proxy-renewd-rules-set.1")).unwrap();
    assert!(page.contains("renew\\-before"), "the rules set page documents its flags");

    let mut cmd = bin();
    cmd.args(["manpage", "--dir"]).arg(dir.path().join("missing"));
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a directory: create it first"), "{}", out.stderr);
    let mut cmd = bin();
    cmd.args(["manpage", "--dir"]).arg(dir.path().join("proxy-renewd.1"));
    let out = run(cmd).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a directory: name a directory"), "{}", out.stderr);
}

#[test]
fn every_packaged_file_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut checked = 0;
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        // Built and generated files appear only when scripts/package-deb runs.
        if source.starts_with("target/") {
            continue;
        }
        if let Some((dir, suffix)) = source.split_once("/*") {
            let found = std::fs::read_dir(root.join(dir))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(suffix))
                .count();
            assert!(found > 0, "packaged pattern {source} matches no file");
        } else {
            assert!(root.join(source).is_file(), "packaged file {source} does not exist");
        }
        checked += 1;
    }
    assert!(checked >= 3, "{checked}");
    for unit in
        ["proxy-renewd.service", "proxy-renewd-audit.service", "proxy-renewd-audit.timer", "proxy-renewd.sysusers"]
    {
        assert!(root.join("systemd").join(unit).is_file(), "{unit}");
    }
    for script in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(root.join("debian").join(script)).unwrap();
        assert!(text.contains("#DEBHELPER#"), "{script} must let cargo-deb add the units' and user's steps");
    }
    let postrm = std::fs::read_to_string(root.join("debian/postrm")).unwrap();
    assert!(postrm.contains("rm -rf /etc/proxy-renewd /var/lib/proxy-renewd"), "purge leaves nothing");
}
