//! `ringmq`: parse arguments, build the configuration, run the broker; or, as
//! `ringmq passwd ...`, edit a password file (before clap, which knows only broker options).

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "passwd") {
        return passwd();
    }
    let cli = ringmq::config::Cli::parse();
    if let Some(path) = &cli.check_config {
        return check_config(path);
    }
    if cli.print_systemd_unit {
        let binary = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/usr/local/bin/ringmq".into());
        let config = cli.config.as_ref().map(|p| p.display().to_string());
        print!(
            "{}",
            ringmq::config::systemd_unit(&binary, config.as_deref())
        );
        return std::process::ExitCode::SUCCESS;
    }
    let config = match ringmq::config::Config::from_cli(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ringmq: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return std::process::ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: logs piped to files or journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Shard threads hand log lines to a writer thread instead of writing stdout themselves, so
    // a slow terminal or pipe never stalls routing. Past `LOG_LINES_BUFFERED_MAX` waiting
    // lines, new ones are dropped (the per-kind limits in `shard::log` keep floods far below).
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_LINES_BUFFERED_MAX)
        .finish(std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer)
        .init();
    ringmq::runtime::abort_on_panic();
    match ringmq::runtime::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ringmq failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines waiting for the writer thread before new ones are dropped.
const LOG_LINES_BUFFERED_MAX: usize = 64 * 1024;

/// `ringmq --check-config FILE`: 0 and a summary when every file reads, 1 and one line per
/// problem otherwise.
fn check_config(path: &std::path::Path) -> std::process::ExitCode {
    match ringmq::config::check_config_file(path) {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(ringmq::config::CheckFailed(problems)) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `ringmq passwd`: exit 0 on success, 1 with a message on stderr otherwise.
fn passwd() -> std::process::ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(2)
        .map(|a| a.into_string())
        .collect();
    let result = match args {
        Ok(args) => ringmq::auth::passwd::run_passwd_command(&args),
        Err(arg) => Err(format!("argument {arg:?} is not UTF-8")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringmq passwd: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
