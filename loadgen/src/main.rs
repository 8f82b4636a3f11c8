//! `ringmq-loadgen`: parse the command line, run, map errors to exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ringmq_loadgen::cli::Cli::parse();
    match ringmq_loadgen::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringmq-loadgen: {error}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
