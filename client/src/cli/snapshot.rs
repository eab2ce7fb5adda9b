//! `snapshot ...`: a domain's snapshots.

use std::path::PathBuf;

use clap::Subcommand;
use libvirt_grpc_client::v1;
use serde_json::json;

use super::{output, read_text, spec, Ctx, Failure};

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// List a domain's snapshots.
    List {
        /// Domain name.
        domain: String,
        /// Only snapshots without a parent.
        #[arg(long)]
        roots: bool,
        /// Only snapshots without children.
        #[arg(long)]
        leaves: bool,
        /// Parents before their children.
        #[arg(long)]
        topological: bool,
    },
    /// Take a snapshot (from flags, a SnapshotSpec file or libvirt XML).
    Create {
        /// Domain name.
        domain: String,
        /// The snapshot's name; default: libvirt's (the time).
        #[arg(long, conflicts_with_all = ["xml", "spec"])]
        name: Option<String>,
        /// A description.
        #[arg(long, conflicts_with_all = ["xml", "spec"])]
        description: Option<String>,
        /// Libvirt snapshot XML.
        #[arg(long, conflicts_with = "spec")]
        xml: Option<PathBuf>,
        /// A SnapshotSpec as TOML or JSON (per-disk modes and files).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Disks only, no memory state.
        #[arg(long)]
        disk_only: bool,
        /// Freeze the guest's file systems first (needs the guest agent).
        #[arg(long)]
        quiesce: bool,
        /// All disks or none.
        #[arg(long)]
        atomic: bool,
        /// Keep the domain running while it is taken.
        #[arg(long)]
        live: bool,
        /// Stop the domain once it is taken.
        #[arg(long)]
        halt: bool,
    },
    /// Show one snapshot (with --xml: its XML).
    Info {
        /// Domain name.
        domain: String,
        /// Snapshot name.
        name: String,
        /// Print its XML instead.
        #[arg(long)]
        xml: bool,
    },
    /// Show the current snapshot.
    Current {
        /// Domain name.
        domain: String,
    },
    /// Revert the domain to a snapshot.
    Revert {
        /// Domain name.
        domain: String,
        /// Snapshot name.
        name: String,
        /// Run the domain afterwards, whatever the snapshot's state.
        #[arg(long, conflicts_with = "paused")]
        running: bool,
        /// Leave the domain paused afterwards.
        #[arg(long)]
        paused: bool,
        /// Revert even where libvirt would refuse as risky.
        #[arg(long)]
        force: bool,
    },
    /// Delete a snapshot.
    Delete {
        /// Domain name.
        domain: String,
        /// Snapshot name.
        name: String,
        /// Its descendants too.
        #[arg(long, conflicts_with = "children_only")]
        children: bool,
        /// Only its descendants.
        #[arg(long)]
        children_only: bool,
        /// Only libvirt's metadata, not the data.
        #[arg(long)]
        metadata_only: bool,
    },
}

pub(crate) async fn run(ctx: &Ctx, cmd: SnapshotCommand) -> Result<(), Failure> {
    use SnapshotCommand as C;
    let mut snaps = ctx.client.snapshots();
    let json = ctx.json;
    match cmd {
        C::List {
            domain,
            roots,
            leaves,
            topological,
        } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = snaps
                    .list_snapshots(ctx.req(v1::ListSnapshotsRequest {
                        domain: ctx.dref(&domain),
                        parent_filter: if roots {
                            v1::SnapshotParentFilter::Roots as i32
                        } else {
                            0
                        },
                        leaf_filter: if leaves {
                            v1::SnapshotLeafFilter::Leaves as i32
                        } else {
                            0
                        },
                        topological,
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                all.extend(page.snapshots);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_snapshots(json, &all)?;
        }
        C::Create {
            domain,
            name,
            description,
            xml,
            spec: spec_file,
            disk_only,
            quiesce,
            atomic,
            live,
            halt,
        } => {
            let source = match (xml, spec_file) {
                (Some(x), _) => v1::create_snapshot_request::Source::Xml(read_text(&x)?),
                (None, Some(s)) => {
                    v1::create_snapshot_request::Source::Spec(spec::load(&s, "SnapshotSpec")?)
                }
                (None, None) => v1::create_snapshot_request::Source::Spec(v1::SnapshotSpec {
                    name: name.unwrap_or_default(),
                    description: description.unwrap_or_default(),
                    disks: Vec::new(),
                }),
            };
            let s = snaps
                .create_snapshot(ctx.req(v1::CreateSnapshotRequest {
                    domain: ctx.dref(&domain),
                    source: Some(source),
                    disk_only,
                    quiesce,
                    atomic,
                    live,
                    halt,
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .snapshot
                .ok_or_else(|| Failure::missing("snapshot"))?;
            print_snapshot(json, &s)?;
        }
        C::Info { domain, name, xml } => {
            let r = snaps
                .get_snapshot(ctx.req(v1::GetSnapshotRequest {
                    snapshot: ctx.snap_ref(&domain, &name),
                }))
                .await?
                .into_inner();
            match (xml, json) {
                (true, true) => output::print_json(&json!({"name": name, "xml": r.xml})),
                (true, false) => println!("{}", r.xml.trim_end()),
                _ => print_snapshot(
                    json,
                    &r.snapshot.ok_or_else(|| Failure::missing("snapshot"))?,
                )?,
            }
        }
        C::Current { domain } => {
            let s = snaps
                .get_current_snapshot(ctx.req(v1::GetCurrentSnapshotRequest {
                    domain: ctx.dref(&domain),
                }))
                .await?
                .into_inner()
                .snapshot
                .ok_or_else(|| Failure::missing("snapshot"))?;
            print_snapshot(json, &s)?;
        }
        C::Revert {
            domain,
            name,
            running,
            paused,
            force,
        } => {
            let state = match (running, paused) {
                (true, _) => v1::SnapshotRevertState::Running,
                (_, true) => v1::SnapshotRevertState::Paused,
                _ => v1::SnapshotRevertState::Unspecified,
            };
            let r = snaps
                .revert_snapshot(ctx.req(v1::RevertSnapshotRequest {
                    snapshot: ctx.snap_ref(&domain, &name),
                    state: state as i32,
                    force,
                }))
                .await?
                .into_inner();
            output::print_optional(json, r.domain)?;
        }
        C::Delete {
            domain,
            name,
            children,
            children_only,
            metadata_only,
        } => {
            let extent = match (children, children_only) {
                (true, _) => v1::SnapshotDeleteExtent::WithDescendants,
                (_, true) => v1::SnapshotDeleteExtent::DescendantsOnly,
                _ => v1::SnapshotDeleteExtent::Snapshot,
            };
            snaps
                .delete_snapshot(ctx.req(v1::DeleteSnapshotRequest {
                    snapshot: ctx.snap_ref(&domain, &name),
                    extent: extent as i32,
                    metadata_only,
                }))
                .await?;
            output::done(json, &name, "deleted");
        }
    }
    Ok(())
}

fn print_snapshot(json: bool, s: &v1::Snapshot) -> Result<(), Failure> {
    if json {
        output::print_json(&output::proto_json("Snapshot", s)?);
        Ok(())
    } else {
        print_snapshots(false, std::slice::from_ref(s))
    }
}

fn print_snapshots(json: bool, all: &[v1::Snapshot]) -> Result<(), Failure> {
    if json {
        output::print_json(&output::proto_json_array("Snapshot", all)?);
        return Ok(());
    }
    let mut t = output::table(&[
        "DOMAIN",
        "NAME",
        "CREATED",
        "STATE",
        "PARENT",
        "CURRENT",
        "DISK ONLY",
    ]);
    for s in all {
        t.add_row(vec![
            s.domain.clone(),
            s.name.clone(),
            s.create_time.map(|t| t.to_string()).unwrap_or_default(),
            s.state()
                .as_str_name()
                .trim_start_matches("DOMAIN_STATE_")
                .to_owned(),
            s.parent.clone(),
            output::yes(s.current),
            output::yes(s.disk_only),
        ]);
    }
    println!("{t}");
    Ok(())
}
