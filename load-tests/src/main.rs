//! `agora-load-tests`: load and flash-sale simulations against running Agora servers.
//!
//! The scenarios arrive with the load-test issue; until then the CLI states its usage and
//! refuses to pretend it ran anything.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "agora-load-tests", version, about = "Load tests for Agora")]
struct Cli {
    /// Scenario to run: flash-sale, browse or cart.
    scenario: String,
    /// Comma-separated base URLs of the Agora processes under test.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "agora-load-tests: scenario {:?} is not implemented yet (targets: {:?})",
        cli.scenario, cli.target
    );
    ExitCode::from(2)
}
