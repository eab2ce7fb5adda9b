//! `net ...`: virtual networks and their DHCP leases.

use std::path::PathBuf;

use clap::Subcommand;
use libvirt_grpc_client::v1;

use super::{output, read_text, spec, storage::print_xml, Ctx, Failure, OnOff};

#[derive(Debug, Subcommand)]
pub(crate) enum NetCommand {
    /// List networks.
    List,
    /// Show one network.
    Info {
        /// Network name.
        name: String,
    },
    /// Print a network's libvirt XML.
    Dumpxml {
        /// Network name.
        name: String,
        /// The persistent definition instead of the live one.
        #[arg(long)]
        inactive: bool,
    },
    /// Define a network from libvirt XML or a NetworkSpec file.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["xml", "spec"])))]
    Define {
        /// The network XML.
        #[arg(long)]
        xml: Option<PathBuf>,
        /// A NetworkSpec as TOML or JSON (`forward_mode = "nat"`).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Start it once defined.
        #[arg(long)]
        start: bool,
        /// Start it with the host.
        #[arg(long)]
        autostart: bool,
    },
    /// Start a network.
    Start {
        /// Network name.
        name: String,
    },
    /// Stop a network (libvirt's destroy).
    Stop {
        /// Network name.
        name: String,
    },
    /// Remove a network's definition.
    Undefine {
        /// Network name.
        name: String,
    },
    /// Start the network with its host, or not.
    Autostart {
        /// Network name.
        name: String,
        /// on or off.
        value: OnOff,
    },
    /// The DHCP leases a running network handed out.
    DhcpLeases {
        /// Network name.
        name: String,
        /// Only the leases of this MAC address.
        #[arg(long, default_value = "")]
        mac: String,
    },
}

fn net_out(json: bool, n: Option<v1::Network>) -> Result<(), Failure> {
    let n = n.ok_or_else(|| Failure::missing("network"))?;
    if json {
        output::print_json(&output::proto_json("Network", &n)?);
        Ok(())
    } else {
        print_nets(std::slice::from_ref(&n));
        Ok(())
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: NetCommand) -> Result<(), Failure> {
    use NetCommand as C;
    let mut nets = ctx.client.networks();
    let json = ctx.json;
    match cmd {
        C::List => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = nets
                    .list_networks(ctx.req(v1::ListNetworksRequest {
                        host: ctx.host.clone(),
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                all.extend(page.networks);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if json {
                output::print_json(&output::proto_json_array("Network", &all)?);
            } else {
                print_nets(&all);
            }
        }
        C::Info { name } => {
            let n = nets
                .get_network(ctx.req(v1::GetNetworkRequest {
                    network: ctx.net_ref(&name),
                }))
                .await?
                .into_inner()
                .network;
            net_out(json, n)?;
        }
        C::Dumpxml { name, inactive } => {
            let xml = nets
                .get_network_xml(ctx.req(v1::GetNetworkXmlRequest {
                    network: ctx.net_ref(&name),
                    inactive,
                }))
                .await?
                .into_inner()
                .xml;
            print_xml(json, &name, &xml);
        }
        C::Define {
            xml,
            spec: spec_file,
            start,
            autostart,
        } => {
            let source = match (xml, spec_file) {
                (Some(x), _) => v1::define_network_request::Source::Xml(read_text(&x)?),
                (None, Some(s)) => {
                    v1::define_network_request::Source::Spec(spec::load(&s, "NetworkSpec")?)
                }
                (None, None) => return Err(Failure::Input("--xml or --spec is needed".into())),
            };
            let n = nets
                .define_network(ctx.req(v1::DefineNetworkRequest {
                    host: ctx.host.clone(),
                    source: Some(source),
                    start,
                    autostart,
                }))
                .await?
                .into_inner()
                .network;
            net_out(json, n)?;
        }
        C::Start { name } => {
            let n = nets
                .start_network(ctx.req(v1::StartNetworkRequest {
                    network: ctx.net_ref(&name),
                }))
                .await?
                .into_inner()
                .network;
            net_out(json, n)?;
        }
        C::Stop { name } => {
            let n = nets
                .stop_network(ctx.req(v1::StopNetworkRequest {
                    network: ctx.net_ref(&name),
                }))
                .await?
                .into_inner()
                .network;
            net_out(json, n)?;
        }
        C::Undefine { name } => {
            nets.undefine_network(ctx.req(v1::UndefineNetworkRequest {
                network: ctx.net_ref(&name),
            }))
            .await?;
            output::done(json, &name, "undefined");
        }
        C::Autostart { name, value } => {
            let n = nets
                .set_network_autostart(ctx.req(v1::SetNetworkAutostartRequest {
                    network: ctx.net_ref(&name),
                    autostart: value.on(),
                }))
                .await?
                .into_inner()
                .network;
            net_out(json, n)?;
        }
        C::DhcpLeases { name, mac } => {
            let leases = nets
                .get_network_dhcp_leases(ctx.req(v1::GetNetworkDhcpLeasesRequest {
                    network: ctx.net_ref(&name),
                    mac,
                }))
                .await?
                .into_inner()
                .leases;
            if json {
                output::print_json(&output::proto_json_array("DhcpLease", &leases)?);
            } else {
                let mut t = output::table(&[
                    "EXPIRES",
                    "MAC",
                    "PROTOCOL",
                    "ADDRESS",
                    "HOSTNAME",
                    "CLIENT ID",
                ]);
                for l in &leases {
                    t.add_row(vec![
                        l.expire_time.map(|t| t.to_string()).unwrap_or_default(),
                        l.mac.clone(),
                        if l.ipv6 { "ipv6" } else { "ipv4" }.to_owned(),
                        format!("{}/{}", l.ip_address, l.prefix),
                        l.hostname.clone(),
                        l.client_id.clone(),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(())
}

fn print_nets(all: &[v1::Network]) {
    let mut t = output::table(&[
        "HOST",
        "NAME",
        "ACTIVE",
        "AUTOSTART",
        "PERSISTENT",
        "FORWARD",
        "BRIDGE",
    ]);
    for n in all {
        t.add_row(vec![
            n.host.clone(),
            n.name.clone(),
            output::yes(n.active),
            output::yes(n.autostart),
            output::yes(n.persistent),
            output::short_enum("NetworkForwardMode", n.forward_mode().as_str_name()),
            n.bridge.clone(),
        ]);
    }
    println!("{t}");
}
