//! `completions` and `manpage`: shell completions (clap_complete) and roff manual pages
//! (clap_mangen), generated from the command line's own clap definitions, so they can never
//! disagree with `--help`. The Debian package ships what these print.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Exit, emit, emit_with};

/// Writes the completion script for `shell` to stdout.
///
/// # Errors
/// Standard output cannot be written (a closed pipe is not an error).
pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "proxy-renewd", &mut script);
    let script = String::from_utf8_lossy(&script);
    // clap_complete 4.6.12's bash script names the states of a hyphenated program two ways
    // (`proxy__renewd__subcmd__rules` while walking the words, `proxy__subcmd__renewd__…` in
    // the case arms: clap issue #6421), so nothing after the first word would ever complete.
    // One spelling for both.
    let script = match shell {
        clap_complete::Shell::Bash => script.replace("proxy__subcmd__renewd", "proxy__renewd"),
        _ => script.into_owned(),
    };
    emit(&script)?;
    Ok(Exit::Ok)
}

/// Writes the top-level manual page to stdout, or with `dir` one page per command
/// (`proxy-renewd.1`, `proxy-renewd-rules.1`, `proxy-renewd-rules-set.1`, …) into it, and
/// lists the files written.
///
/// # Errors
/// `dir` does not exist or cannot be written; standard output cannot be written.
pub(super) fn manpage(dir: Option<&Path>) -> anyhow::Result<Exit> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            emit_with(|out| out.write_all(&page))?;
        }
        Some(dir) => {
            if !dir.is_dir() {
                let fix = if dir.exists() { "name a directory" } else { "create it first" };
                anyhow::bail!("{} is not a directory: {fix}", dir.display());
            }
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| anyhow::anyhow!("cannot write the manual pages into {}: {e}", dir.display()))?;
            let mut written: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|name| name.starts_with("proxy-renewd") && name.ends_with(".1"))
                .collect();
            written.sort();
            emit(&format!("{}\n", written.join("\n")))?;
        }
    }
    Ok(Exit::Ok)
}
