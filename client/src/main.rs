//! `libvirt-grpc`: the command-line tool over the client crate, the
//! everyday virsh verbs against a libvirt-grpc server (see `cli`).
//!
//! Output: a table with headers, or with `--json` one JSON document per
//! command (an object, or an array for listings; `events` and
//! `agent exec` print one object per line), whose field names are stable.
//! Exit codes tell failures apart (see [`cli::exit_code`]).
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use cli::{Args, Command, Failure};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Command::Completions { shell } => {
            let mut cmd = Args::command();
            clap_complete::generate(*shell, &mut cmd, "libvirt-grpc", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => return man(dir.as_deref()),
        _ => {}
    }
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(e)) => {
            eprintln!("libvirt-grpc: {}", cli::with_causes(&e));
            ExitCode::from(cli::exit_code(e.code()))
        }
        Err(Failure::Local(m)) => {
            eprintln!("libvirt-grpc: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Input(m)) => {
            eprintln!("libvirt-grpc: {m}");
            ExitCode::from(5)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

/// The man page from the clap definitions (clap_mangen): the main page on
/// stdout, or every page (one per command and subcommand) into `dir`.
fn man(dir: Option<&std::path::Path>) -> ExitCode {
    let cmd = Args::command();
    let result = match dir {
        Some(d) => std::fs::create_dir_all(d).and_then(|()| clap_mangen::generate_to(cmd, d)),
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `libvirt-grpc man | head`: the reader had enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("libvirt-grpc: Cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}
