//! `libvirt-grpc`: a small command-line tool over the client crate.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use libvirt_grpc_client::{v1, Client};

/// Talk to a libvirt-grpc server.
#[derive(Debug, Parser)]
#[command(name = "libvirt-grpc", version)]
struct Args {
    /// The server URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// The host to address; empty means the server's default.
    #[arg(long, default_value = "")]
    host: String,
    /// Per-call deadline in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the configured hosts and their health.
    Hosts,
    /// List domains.
    List,
    /// Show one domain.
    Get {
        /// Domain name.
        name: String,
    },
    /// Start a domain.
    Start {
        /// Domain name.
        name: String,
    },
    /// Stop a domain at once (libvirt's destroy).
    Stop {
        /// Domain name.
        name: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("libvirt-grpc: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print_domain(d: &v1::Domain) {
    println!(
        "{:<24} {:<38} {:<12} {}",
        d.name,
        d.uuid,
        d.state().as_str_name().trim_start_matches("DOMAIN_STATE_"),
        d.state_reason()
            .as_str_name()
            .trim_start_matches("DOMAIN_STATE_REASON_")
    );
}

async fn run(args: Args) -> Result<(), libvirt_grpc_client::ClientError> {
    let client = Client::connect(args.server)
        .await?
        .with_default_host(args.host)
        .with_timeout(std::time::Duration::from_secs(args.timeout));
    match args.command {
        Command::Hosts => {
            let resp = client
                .hosts()
                .list_hosts(client.request(v1::ListHostsRequest {}))
                .await?
                .into_inner();
            for h in resp.hosts {
                println!("{:<16} {:<32} {:?}", h.name, h.uri, h.health());
            }
        }
        Command::List => client.list_domains().await?.iter().for_each(print_domain),
        Command::Get { name } => print_domain(&client.get_domain(&name).await?),
        Command::Start { name } => print_domain(&client.start_domain(&name).await?),
        Command::Stop { name } => match client.stop_domain(&name).await? {
            Some(d) => print_domain(&d),
            None => println!("{name}: stopped and gone (it was transient)"),
        },
    }
    Ok(())
}
