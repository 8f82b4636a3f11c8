//! `ringmq`: parse arguments, build the configuration, run the broker.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = ringmq::config::Cli::parse();
    let config = match ringmq::config::Config::from_cli(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ringmq: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: logs piped to files or journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    match ringmq::runtime::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ringmq failed");
            std::process::ExitCode::FAILURE
        }
    }
}
