//! The domain verbs, top-level as in virsh: `libvirt-grpc start web1`.

use std::path::PathBuf;

use clap::Subcommand;
use libvirt_grpc_client::v1;
use serde_json::json;

use super::{
    console, keys, output, output::print_optional, parse_size, read_text, spec, Ctx, Failure,
    OnOff, Scope,
};

#[derive(Debug, Subcommand)]
pub(crate) enum DomainCommand {
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
    /// Define (or update) a domain from libvirt XML or a spec file.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["xml", "spec"])))]
    Define {
        /// The domain XML.
        #[arg(long)]
        xml: Option<PathBuf>,
        /// A DomainSpec as TOML (`.toml`) or JSON (any other name): every
        /// field of the proto's DomainSpec, enum values short or full
        /// (`format = "qcow2"` or `"DISK_FORMAT_QCOW2"`).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Reject XML that does not validate against libvirt's schema.
        #[arg(long)]
        validate: bool,
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
        /// Start it with its vCPUs paused.
        #[arg(long)]
        paused: bool,
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
    /// Change the domain's memory.
    Setmem {
        /// Domain name.
        name: String,
        /// The new size: bytes, or with K, M, G, T (binary: 512M, 2G).
        #[arg(value_parser = parse_size)]
        size: u64,
        #[command(flatten)]
        scope: Scope,
        /// Change the maximum instead of the current size.
        #[arg(long)]
        maximum: bool,
    },
    /// Change the domain's number of vCPUs.
    Setvcpus {
        /// Domain name.
        name: String,
        /// The new number of vCPUs.
        count: u32,
        #[command(flatten)]
        scope: Scope,
        /// Change the maximum instead of the current count (config only).
        #[arg(long)]
        maximum: bool,
    },
    /// Attach a device described by an XML file (`<disk>`, `<interface>`).
    AttachDevice {
        /// Domain name.
        name: String,
        /// The device XML.
        file: PathBuf,
        #[command(flatten)]
        scope: Scope,
    },
    /// Detach the device an XML file identifies.
    DetachDevice {
        /// Domain name.
        name: String,
        /// The device XML (enough of it to identify the device).
        file: PathBuf,
        #[command(flatten)]
        scope: Scope,
    },
    /// Start the domain with its host, or not.
    Autostart {
        /// Domain name.
        name: String,
        /// on or off.
        value: OnOff,
    },
    /// Press keys together on the domain's keyboard.
    SendKey {
        /// Domain name.
        name: String,
        /// Key codes (numbers), or with the linux code set names such as
        /// KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE, KEY_A, KEY_ENTER.
        #[arg(required = true)]
        keys: Vec<String>,
        /// The code set of numeric keys: linux, xt, atset1, atset2,
        /// atset3, osx, xt_kbd, usb, win32, qnum.
        #[arg(long, default_value = "linux")]
        codeset: String,
        /// How long to hold the keys, in milliseconds.
        #[arg(long)]
        hold_ms: Option<u64>,
    },
    /// Statistics of running domains (CPU, balloon, vCPUs, disks, NICs).
    Stats {
        /// Domain names; none: every running domain of the host.
        names: Vec<String>,
    },
    /// Print the domain's libvirt XML.
    Dumpxml {
        /// Domain name.
        name: String,
        /// The persistent definition instead of the live one.
        #[arg(long)]
        inactive: bool,
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
    /// Migrate a domain to another configured host, with progress.
    Migrate {
        /// Domain name (on --host).
        name: String,
        /// The configured host to move it to.
        destination: String,
        /// Pause the domain while its memory is copied (default: live).
        #[arg(long, conflicts_with = "offline")]
        paused: bool,
        /// Move only the definition of an inactive domain (implies
        /// --persistent).
        #[arg(long)]
        offline: bool,
        /// Define it persistently on the destination.
        #[arg(long)]
        persistent: bool,
        /// Remove the definition from the source once it succeeded.
        #[arg(long)]
        undefine_source: bool,
        /// Bandwidth limit in MiB/s.
        #[arg(long, default_value_t = 0)]
        bandwidth: u64,
        /// Throttle the guest's vCPUs when the migration does not converge.
        #[arg(long)]
        auto_converge: bool,
        /// Copy non-shared disks too.
        #[arg(long)]
        copy_storage: bool,
    },
    /// Connect to the domain's serial console (escape: Ctrl-]).
    Console {
        /// Domain name.
        name: String,
        /// The console's alias (serial0, console0); default: the first.
        #[arg(long, default_value = "")]
        device: String,
        /// Take the console over from whoever holds it.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: DomainCommand) -> Result<(), Failure> {
    use DomainCommand as C;
    let json = ctx.json;
    let mut domains = ctx.client.domains();
    match cmd {
        C::List { all_hosts } => {
            let host = if all_hosts {
                "*".to_owned()
            } else {
                ctx.host.clone()
            };
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = domains
                    .list_domains(ctx.req(v1::ListDomainsRequest {
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
            output::print_domains(json, &all);
        }
        C::Info { name } => output::print_domain(json, &ctx.client.get_domain(&name).await?),
        C::Define {
            xml,
            spec: spec_file,
            validate,
        } => {
            let source = match (xml, spec_file) {
                (Some(x), _) => v1::define_domain_request::Source::Xml(read_text(&x)?),
                (None, Some(s)) => {
                    v1::define_domain_request::Source::Spec(spec::load(&s, "DomainSpec")?)
                }
                (None, None) => return Err(Failure::Input("--xml or --spec is needed".into())),
            };
            let d = domains
                .define_domain(ctx.req(v1::DefineDomainRequest {
                    host: ctx.host.clone(),
                    source: Some(source),
                    validate,
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::Undefine { name } => {
            ctx.client.undefine_domain(&name).await?;
            output::done(json, &name, "undefined");
        }
        C::Start { name, paused } => {
            let d = domains
                .start_domain(ctx.req(v1::StartDomainRequest {
                    domain: ctx.dref(&name),
                    paused,
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::Shutdown { name } => {
            print_optional(json, Some(ctx.client.domain(name).shutdown().await?))?
        }
        C::Reboot { name } => print_optional(json, Some(ctx.client.domain(name).reboot().await?))?,
        C::Reset { name } => print_optional(json, Some(ctx.client.domain(name).reset().await?))?,
        C::Destroy { name } => match ctx.client.stop_domain(&name).await? {
            Some(d) => output::print_domain(json, &d),
            None => output::done(json, &name, "gone"),
        },
        C::Suspend { name } => {
            print_optional(json, Some(ctx.client.domain(name).suspend().await?))?
        }
        C::Resume { name } => print_optional(json, Some(ctx.client.domain(name).resume().await?))?,
        C::Setmem {
            name,
            size,
            scope,
            maximum,
        } => {
            let d = domains
                .set_domain_memory(ctx.req(v1::SetDomainMemoryRequest {
                    domain: ctx.dref(&name),
                    memory_bytes: size,
                    scope: scope.scope(),
                    maximum,
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::Setvcpus {
            name,
            count,
            scope,
            maximum,
        } => {
            let d = domains
                .set_domain_vcpus(ctx.req(v1::SetDomainVcpusRequest {
                    domain: ctx.dref(&name),
                    vcpus: count,
                    scope: scope.scope(),
                    maximum,
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::AttachDevice { name, file, scope } => {
            let d = domains
                .attach_domain_device(ctx.req(v1::AttachDomainDeviceRequest {
                    domain: ctx.dref(&name),
                    xml: read_text(&file)?,
                    scope: scope.scope(),
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::DetachDevice { name, file, scope } => {
            let d = domains
                .detach_domain_device(ctx.req(v1::DetachDomainDeviceRequest {
                    domain: ctx.dref(&name),
                    xml: read_text(&file)?,
                    scope: scope.scope(),
                }))
                .await?
                .into_inner()
                .domain;
            print_optional(json, d)?;
        }
        C::Autostart { name, value } => {
            let d = ctx.client.domain(name).set_autostart(value.on()).await?;
            output::print_domain(json, &d);
        }
        C::SendKey {
            name,
            keys,
            codeset,
            hold_ms,
        } => {
            let set = keys::parse_codeset(&codeset)?;
            let keycodes = keys
                .iter()
                .map(|k| keys::key_code(k, set))
                .collect::<Result<Vec<_>, _>>()?;
            domains
                .send_domain_key(ctx.req(v1::SendDomainKeyRequest {
                    domain: ctx.dref(&name),
                    codeset: set as i32,
                    hold_duration: hold_ms.map(|ms| prost_types::Duration {
                        seconds: (ms / 1000) as i64,
                        nanos: ((ms % 1000) * 1_000_000) as i32,
                    }),
                    keycodes,
                }))
                .await?;
            output::done(json, &name, "keys sent");
        }
        C::Stats { names } => {
            let stats = domains
                .get_domain_stats(ctx.req(v1::GetDomainStatsRequest {
                    host: ctx.host.clone(),
                    domains: names.iter().filter_map(|n| ctx.dref(n)).collect(),
                    groups: Vec::new(),
                }))
                .await?
                .into_inner()
                .stats;
            print_stats(json, &stats)?;
        }
        C::Dumpxml { name, inactive } => {
            let xml = domains
                .get_domain_xml(ctx.req(v1::GetDomainXmlRequest {
                    domain: ctx.dref(&name),
                    inactive,
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .xml;
            if json {
                output::print_json(&json!({"name": name, "xml": xml}));
            } else {
                print!("{xml}");
                if !xml.ends_with('\n') {
                    println!();
                }
            }
        }
        C::Screenshot {
            name,
            output: file,
            screen,
        } => {
            let (info, png) = ctx.client.screenshot_domain(&name, screen).await?;
            std::fs::write(&file, &png).map_err(|e| Failure::file("write", &file, e))?;
            if json {
                output::print_json(&json!({"name": name, "file": file, "bytes": png.len(),
                           "source_mime_type": info.source_mime_type}));
            } else {
                println!("{name}: {} bytes of PNG in {}", png.len(), file.display());
            }
        }
        C::Migrate {
            name,
            destination,
            paused,
            offline,
            persistent,
            undefine_source,
            bandwidth,
            auto_converge,
            copy_storage,
        } => {
            let mode = match (paused, offline) {
                (_, true) => v1::MigrationMode::Offline,
                (true, false) => v1::MigrationMode::Paused,
                _ => v1::MigrationMode::Live,
            };
            let options = v1::MigrationOptions {
                mode: mode as i32,
                persistent_destination: persistent || offline,
                undefine_source,
                bandwidth_mib_per_second: bandwidth,
                auto_converge,
                copy_storage,
                ..Default::default()
            };
            migrate(ctx, &name, destination, options).await?;
        }
        C::Console {
            name,
            device,
            force,
        } => console::run(ctx, &name, device, force).await?,
    }
    Ok(())
}

/// Streams a migration: a progress bar of the memory (or data) moved,
/// then the domain on its destination.
async fn migrate(
    ctx: &Ctx,
    name: &str,
    destination: String,
    options: v1::MigrationOptions,
) -> Result<(), Failure> {
    use v1::migrate_domain_response::Item;
    let mut stream = ctx
        .client
        .domains()
        .migrate_domain(ctx.long_req(v1::MigrateDomainRequest {
            domain: ctx.dref(name),
            destination_host: destination,
            options: Some(options),
            progress_interval: None,
        }))
        .await?
        .into_inner();
    // No total until the job reports one (a length of 0 draws as full).
    let bar = output::progress(None, &format!("migrating {name}"));
    let mut last = None;
    while let Some(msg) = stream.message().await? {
        match msg.item {
            Some(Item::Progress(job)) => {
                let (done, total) = if job.memory_total_bytes > 0 {
                    (job.memory_processed_bytes, job.memory_total_bytes)
                } else {
                    (job.data_processed_bytes, job.data_total_bytes)
                };
                if total > 0 {
                    bar.set_length(total);
                }
                bar.set_position(done);
                if ctx.json {
                    output::print_json(
                        &json!({"progress": output::proto_json("DomainJob", &job)?}),
                    );
                }
            }
            Some(Item::Domain(d)) => last = Some(d),
            None => {}
        }
    }
    bar.finish_and_clear();
    print_optional(ctx.json, last)
}

fn print_stats(json: bool, stats: &[v1::DomainStats]) -> Result<(), Failure> {
    if json {
        output::print_json(&output::proto_json_array("DomainStats", stats)?);
        return Ok(());
    }
    let secs = |d: &Option<prost_types::Duration>| {
        d.as_ref()
            .map(|d| format!("{:.2}", d.seconds as f64 + f64::from(d.nanos) / 1e9))
            .unwrap_or_default()
    };
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut t = output::table(&[
        "NAME",
        "STATE",
        "CPU (s)",
        "BALLOON (MiB)",
        "VCPUS",
        "DISK",
        "READ (B)",
        "WRITTEN (B)",
        "NIC",
        "RX (B)",
        "TX (B)",
    ]);
    for s in stats {
        let rows = s.blocks.len().max(s.interfaces.len()).max(1);
        for i in 0..rows {
            let disk = s.blocks.get(i);
            let nic = s.interfaces.get(i);
            let first = i == 0;
            t.add_row(vec![
                if first { s.name.clone() } else { String::new() },
                if first {
                    s.state()
                        .as_str_name()
                        .trim_start_matches("DOMAIN_STATE_")
                        .to_owned()
                } else {
                    String::new()
                },
                if first {
                    secs(&s.cpu.as_ref().and_then(|c| c.cpu_time))
                } else {
                    String::new()
                },
                if first {
                    s.balloon
                        .as_ref()
                        .and_then(|b| b.current_bytes)
                        .map(output::mib)
                        .unwrap_or_default()
                } else {
                    String::new()
                },
                if first {
                    s.vcpus.len().to_string()
                } else {
                    String::new()
                },
                disk.map(|d| d.name.clone()).unwrap_or_default(),
                opt(disk.and_then(|d| d.read_bytes)),
                opt(disk.and_then(|d| d.write_bytes)),
                nic.map(|n| n.name.clone()).unwrap_or_default(),
                opt(nic.and_then(|n| n.rx_bytes)),
                opt(nic.and_then(|n| n.tx_bytes)),
            ]);
        }
    }
    println!("{t}");
    Ok(())
}
