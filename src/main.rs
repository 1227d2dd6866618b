//! `proxy-renewd`: parse the command line, hand over to the library, map to an exit code.

use std::process::ExitCode;

use clap::Parser;
use proxy_renewd::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(cli).await.into()
}
