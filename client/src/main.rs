//! `libvirt-grpc`: the command-line tool over the client crate, the
//! everyday virsh verbs against a libvirt-grpc server.
//!
//! Output: a table with headers, or with `--json` one JSON document per
//! command (an object, or an array for listings; `events --follow` prints
//! one object per line), whose field names are stable. Exit codes tell
//! failures apart (see [`exit_code`]).
#![forbid(unsafe_code)]

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use clap::{CommandFactory, Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use libvirt_grpc_client::{v1, Client, ClientError};
use serde_json::{json, Value};
use tokio_stream::StreamExt;

/// Talk to a libvirt-grpc server.
#[derive(Debug, Parser)]
#[command(name = "libvirt-grpc", version, propagate_version = true)]
struct Args {
    /// The server URL.
    #[arg(
        long,
        global = true,
        env = "LIBVIRT_GRPC_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// The host to address (see `hosts`); empty means the server's default.
    #[arg(long, global = true, env = "LIBVIRT_GRPC_HOST", default_value = "")]
    host: String,
    /// Per-call deadline in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the configured hosts and their health.
    Hosts,
    /// List domains (of `--host`, or of every host with --all-hosts).
    List {
        /// Every configured host at once (host "*").
        #[arg(long)]
        all_hosts: bool,
    },
    /// Show one domain.
    Info {
        /// Domain name.
        name: String,
    },
    /// Define a domain from a libvirt XML file.
    Define {
        /// The domain XML.
        #[arg(long)]
        xml: PathBuf,
    },
    /// Remove a domain's definition (with its managed save and snapshot
    /// metadata).
    Undefine {
        /// Domain name.
        name: String,
    },
    /// Start a defined domain.
    Start {
        /// Domain name.
        name: String,
    },
    /// Ask the guest to shut down.
    Shutdown {
        /// Domain name.
        name: String,
    },
    /// Ask the guest to reboot.
    Reboot {
        /// Domain name.
        name: String,
    },
    /// Reset the domain at once, as the reset button does.
    Reset {
        /// Domain name.
        name: String,
    },
    /// Stop the domain at once (libvirt's destroy).
    Destroy {
        /// Domain name.
        name: String,
    },
    /// Pause the domain's vCPUs.
    Suspend {
        /// Domain name.
        name: String,
    },
    /// Resume a paused domain.
    Resume {
        /// Domain name.
        name: String,
    },
    /// Save a PNG screenshot of the domain's screen.
    Screenshot {
        /// Domain name.
        name: String,
        /// Where to write the PNG.
        #[arg(short, long)]
        output: PathBuf,
        /// The screen number.
        #[arg(long, default_value_t = 0)]
        screen: u32,
    },
    /// Print events, one line each as they arrive.
    Events {
        /// Keep following (resuming by itself after a dropped stream);
        /// without it, stop after --count events.
        #[arg(long)]
        follow: bool,
        /// Stop after this many events (default without --follow: 1).
        #[arg(long)]
        count: Option<u64>,
        /// Only events of these domain (or pool, network) names.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What a failed command exits with: scripts can tell these apart.
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | success |
/// | 1 | any other failure (INTERNAL, UNKNOWN, DATA_LOSS, a local file) |
/// | 2 | bad command line (clap's own) |
/// | 3 | not found (NOT_FOUND) |
/// | 4 | server or host unreachable, or too slow (UNAVAILABLE, DEADLINE_EXCEEDED, a failed connect) |
/// | 5 | bad input (INVALID_ARGUMENT, OUT_OF_RANGE) |
/// | 6 | not allowed (PERMISSION_DENIED, UNAUTHENTICATED) |
/// | 7 | the object's state forbids it (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED) |
/// | 8 | the host cannot do this (UNIMPLEMENTED) |
fn exit_code(code: tonic::Code) -> u8 {
    use tonic::Code as C;
    match code {
        C::Ok => 0,
        C::NotFound => 3,
        C::Unavailable | C::DeadlineExceeded => 4,
        C::InvalidArgument | C::OutOfRange => 5,
        C::PermissionDenied | C::Unauthenticated => 6,
        C::FailedPrecondition | C::AlreadyExists | C::Aborted => 7,
        C::Unimplemented => 8,
        _ => 1,
    }
}

/// A failure of the tool: the server's, or a local one (a file).
#[derive(Debug)]
enum Failure {
    Client(Box<ClientError>),
    Local(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(Box::new(e))
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure::Client(Box::new(ClientError::from(s)))
    }
}

/// The error and every cause below it, `: `-separated.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Completions { shell } = args.command {
        let mut cmd = Args::command();
        clap_complete::generate(shell, &mut cmd, "libvirt-grpc", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(e)) => {
            eprintln!("libvirt-grpc: {}", with_causes(&e));
            ExitCode::from(exit_code(e.code()))
        }
        Err(Failure::Local(m)) => {
            eprintln!("libvirt-grpc: {m}");
            ExitCode::from(1)
        }
    }
}

fn state_name(d: &v1::Domain) -> &'static str {
    d.state().as_str_name().trim_start_matches("DOMAIN_STATE_")
}

fn reason_name(d: &v1::Domain) -> &'static str {
    d.state_reason()
        .as_str_name()
        .trim_start_matches("DOMAIN_STATE_REASON_")
}

/// A domain as the tool's JSON: stable field names, enums by name.
fn domain_json(d: &v1::Domain) -> Value {
    json!({
        "host": d.host,
        "name": d.name,
        "uuid": d.uuid,
        "id": d.id,
        "state": state_name(d),
        "state_reason": reason_name(d),
        "memory_bytes": d.memory_bytes,
        "max_memory_bytes": d.max_memory_bytes,
        "vcpus": d.vcpus,
        "autostart": d.autostart,
        "persistent": d.persistent,
    })
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn print_domains(json: bool, domains: &[v1::Domain]) {
    if json {
        let all: Vec<Value> = domains.iter().map(domain_json).collect();
        println!("{}", Value::Array(all));
        return;
    }
    let mut t = table(&[
        "HOST",
        "NAME",
        "STATE",
        "REASON",
        "VCPUS",
        "MEMORY (MiB)",
        "UUID",
    ]);
    for d in domains {
        t.add_row(vec![
            d.host.clone(),
            d.name.clone(),
            state_name(d).to_owned(),
            reason_name(d).to_owned(),
            d.vcpus.to_string(),
            (d.memory_bytes >> 20).to_string(),
            d.uuid.clone(),
        ]);
    }
    println!("{t}");
}

fn print_domain(json: bool, d: &v1::Domain) {
    if json {
        println!("{}", domain_json(d));
    } else {
        print_domains(false, std::slice::from_ref(d));
    }
}

/// One event as one line of JSON or text.
fn event_line(json: bool, e: &v1::Event) -> String {
    let kind = e.kind().as_str_name().trim_start_matches("EVENT_KIND_");
    let detail = match &e.details {
        Some(v1::event::Details::Lifecycle(l)) => l
            .event()
            .as_str_name()
            .trim_start_matches("DOMAIN_LIFECYCLE_EVENT_")
            .to_owned(),
        Some(v1::event::Details::Device(d)) => d.alias.clone(),
        _ => String::new(),
    };
    if json {
        json!({
            "sequence": e.sequence,
            "host": e.host,
            "name": e.name,
            "uuid": e.uuid,
            "kind": kind,
            "detail": detail,
        })
        .to_string()
    } else {
        format!(
            "{:>6} {:<12} {:<32} {kind} {detail}",
            e.sequence, e.host, e.name
        )
        .trim_end()
        .to_owned()
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::connect(args.server.clone())
        .await?
        .with_default_host(args.host.clone())
        .with_timeout(Duration::from_secs(args.timeout));
    let json = args.json;
    let dref = |name: &str| Some(client.domain_ref(name));
    let mut domains = client.domains();
    match args.command {
        Command::Hosts => {
            let hosts = client
                .hosts()
                .list_hosts(client.request(v1::ListHostsRequest {}))
                .await?
                .into_inner()
                .hosts;
            let health = |h: &v1::Host| {
                h.health()
                    .as_str_name()
                    .trim_start_matches("HOST_HEALTH_")
                    .to_owned()
            };
            if json {
                let all: Vec<Value> = hosts
                    .iter()
                    .map(|h| {
                        json!({"name": h.name, "uri": h.uri, "default": h.is_default,
                               "health": health(h), "last_error": h.last_error})
                    })
                    .collect();
                println!("{}", Value::Array(all));
            } else {
                let mut t = table(&["NAME", "URI", "DEFAULT", "HEALTH", "LAST ERROR"]);
                for h in &hosts {
                    t.add_row(vec![
                        h.name.clone(),
                        h.uri.clone(),
                        if h.is_default { "yes" } else { "" }.to_owned(),
                        health(h),
                        h.last_error.clone(),
                    ]);
                }
                println!("{t}");
            }
        }
        Command::List { all_hosts } => {
            let host = if all_hosts {
                "*".to_owned()
            } else {
                args.host.clone()
            };
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = domains
                    .list_domains(client.request(v1::ListDomainsRequest {
                        host: host.clone(),
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                all.extend(page.domains);
                for u in &page.unreachable_hosts {
                    eprintln!("libvirt-grpc: host {} unreachable: {}", u.host, u.message);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_domains(json, &all);
        }
        Command::Info { name } => print_domain(json, &client.get_domain(&name).await?),
        Command::Define { xml } => {
            let text = std::fs::read_to_string(&xml)
                .map_err(|e| Failure::Local(format!("cannot read {}: {e}", xml.display())))?;
            let d = domains
                .define_domain(client.request(v1::DefineDomainRequest {
                    host: args.host.clone(),
                    source: Some(v1::define_domain_request::Source::Xml(text)),
                    validate: false,
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Undefine { name } => {
            client.undefine_domain(&name).await?;
            if json {
                println!("{}", json!({"name": name, "undefined": true}));
            } else {
                println!("{name}: undefined");
            }
        }
        Command::Start { name } => print_domain(json, &client.start_domain(&name).await?),
        Command::Shutdown { name } => {
            let d = domains
                .shutdown_domain(client.request(v1::ShutdownDomainRequest {
                    domain: dref(&name),
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Reboot { name } => {
            let d = domains
                .reboot_domain(client.request(v1::RebootDomainRequest {
                    domain: dref(&name),
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Reset { name } => {
            let d = domains
                .reset_domain(client.request(v1::ResetDomainRequest {
                    domain: dref(&name),
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Destroy { name } => match client.stop_domain(&name).await? {
            Some(d) => print_domain(json, &d),
            None if json => println!("{}", json!({"name": name, "gone": true})),
            None => println!("{name}: stopped and gone (it was transient)"),
        },
        Command::Suspend { name } => {
            let d = domains
                .suspend_domain(client.request(v1::SuspendDomainRequest {
                    domain: dref(&name),
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Resume { name } => {
            let d = domains
                .resume_domain(client.request(v1::ResumeDomainRequest {
                    domain: dref(&name),
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        Command::Screenshot {
            name,
            output,
            screen,
        } => {
            let (info, png) = client.screenshot_domain(&name, screen).await?;
            std::fs::write(&output, &png)
                .map_err(|e| Failure::Local(format!("cannot write {}: {e}", output.display())))?;
            if json {
                println!(
                    "{}",
                    json!({"name": name, "file": output, "bytes": png.len(),
                           "source_mime_type": info.source_mime_type})
                );
            } else {
                println!("{name}: {} bytes of PNG in {}", png.len(), output.display());
            }
        }
        Command::Events {
            follow,
            count,
            names,
        } => {
            let limit = match (follow, count) {
                (_, Some(n)) => Some(n),
                (true, None) => None,
                (false, None) => Some(1),
            };
            let filter = v1::WatchEventsRequest {
                names,
                hosts: if args.host.is_empty() {
                    Vec::new()
                } else {
                    vec![args.host.clone()]
                },
                ..Default::default()
            };
            let mut stream = client.watch(filter);
            let mut seen = 0u64;
            let mut out = std::io::stdout().lock();
            while limit.is_none_or(|n| seen < n) {
                let Some(item) = stream.next().await else {
                    break;
                };
                match item?.item {
                    Some(v1::watch_events_response::Item::Event(e)) => {
                        seen += 1;
                        let _ = writeln!(out, "{}", event_line(json, &e));
                        let _ = out.flush();
                    }
                    Some(v1::watch_events_response::Item::EventsLost(l)) => {
                        eprintln!(
                            "libvirt-grpc: events {}..{} lost ({:?})",
                            l.from_sequence,
                            l.to_sequence,
                            l.reason()
                        );
                    }
                    _ => {}
                }
            }
        }
        Command::Completions { .. } => {}
    }
    Ok(())
}

/// A changed domain, or the server's missing answer as a failure.
fn print_optional(json: bool, d: Option<v1::Domain>) -> Result<(), Failure> {
    let d = d.ok_or_else(|| Failure::Local("the server answered without the domain".into()))?;
    print_domain(json, &d);
    Ok(())
}
