//! The `agora` command line: `serve`, `migrate` and `seed`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{
    configuration::Settings, db, error::error_chain, seed, startup::Application, telemetry,
};

#[derive(Debug, Parser)]
#[command(name = "agora", version, about = "Agora: realtime commerce platform")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP and WebSockets until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Apply pending migrations and write the demo store (never done by `serve`).
    Seed,
    /// Forget what the recommender learned and learn it again from the whole order history.
    RebuildRecommendations,
}

/// Exit code for configuration errors, distinct from runtime failures.
const EXIT_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("agora: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init(&settings.log);
    let outcome = actix_web::rt::System::new().block_on(run(cli.command, settings));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = error_chain(error.as_ref());
            tracing::error!(error = %chain, "agora failed");
            eprintln!("agora: {chain}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve => {
            let application = Application::build(settings).await?;
            application.run_until_stopped().await?;
        }
        Command::Migrate => {
            let applied = db::migrate(&settings.database).await?;
            println!("applied {applied} migration(s); the schema is current");
        }
        Command::Seed => seed::run(&settings)
            .await
            .map_err(Box::<dyn std::error::Error>::from)?,
        Command::RebuildRecommendations => {
            db::migrate(&settings.database).await?;
            let pool = db::build_pool(&settings.database)?;
            let hot = crate::hot_state::HotState::new(&settings.redis)?;
            let orders =
                crate::recommendations::rebuild(&pool, &hot, &settings.recommendations).await?;
            println!("learned from {orders} paid order(s)");
        }
    }
    Ok(())
}
