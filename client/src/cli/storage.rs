//! `pool ...` and `vol ...`: storage pools and volumes; volume transfers
//! are in `transfer`.

use std::path::PathBuf;

use clap::Subcommand;
use libvirt_grpc_client::v1;
use serde_json::json;

use super::{output, parse_size, read_text, spec, transfer, Ctx, Failure, OnOff};

#[derive(Debug, Subcommand)]
pub(crate) enum PoolCommand {
    /// List storage pools.
    List,
    /// Show one pool.
    Info {
        /// Pool name.
        name: String,
    },
    /// Print a pool's libvirt XML.
    Dumpxml {
        /// Pool name.
        name: String,
        /// The persistent definition instead of the live one.
        #[arg(long)]
        inactive: bool,
    },
    /// Define a pool from libvirt XML or a StoragePoolSpec file.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["xml", "spec"])))]
    Define {
        /// The pool XML.
        #[arg(long)]
        xml: Option<PathBuf>,
        /// A StoragePoolSpec as TOML or JSON (`type = "dir"`,
        /// `target_path = "/srv/pool"`).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Build it (create its directory) once defined.
        #[arg(long)]
        build: bool,
        /// Start it once defined.
        #[arg(long)]
        start: bool,
        /// Start it with the host.
        #[arg(long)]
        autostart: bool,
    },
    /// Build a pool's underlying storage (a dir pool's directory).
    Build {
        /// Pool name.
        name: String,
    },
    /// Start a pool.
    Start {
        /// Pool name.
        name: String,
        /// Build it first.
        #[arg(long)]
        build: bool,
    },
    /// Stop a pool.
    Stop {
        /// Pool name.
        name: String,
    },
    /// Refresh a pool's volume list.
    Refresh {
        /// Pool name.
        name: String,
    },
    /// Delete a stopped pool's underlying storage (its directory).
    Delete {
        /// Pool name.
        name: String,
    },
    /// Remove a stopped pool's definition.
    Undefine {
        /// Pool name.
        name: String,
    },
    /// Start the pool with its host, or not.
    Autostart {
        /// Pool name.
        name: String,
        /// on or off.
        value: OnOff,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum VolCommand {
    /// List a pool's volumes.
    List {
        /// Pool name.
        pool: String,
    },
    /// Show one volume.
    Info {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
    },
    /// Print a volume's libvirt XML.
    Dumpxml {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
    },
    /// Create a volume: NAME with --size, or from --xml or --spec.
    Create {
        /// Pool name.
        pool: String,
        /// Volume name (with --size).
        #[arg(required_unless_present_any = ["xml", "spec"], conflicts_with_all = ["xml", "spec"])]
        name: Option<String>,
        /// Capacity: bytes, or with K, M, G, T.
        #[arg(long, value_parser = parse_size, requires = "name")]
        size: Option<u64>,
        /// Format: raw, qcow2, ... (default: the pool's).
        #[arg(long, requires = "name")]
        format: Option<String>,
        /// Bytes to allocate now (default: sparse).
        #[arg(long, value_parser = parse_size, requires = "name")]
        allocation: Option<u64>,
        /// Volume XML.
        #[arg(long, conflicts_with = "spec")]
        xml: Option<PathBuf>,
        /// A StorageVolumeSpec as TOML or JSON.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Delete a volume.
    Delete {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
    },
    /// Resize a volume.
    Resize {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
        /// The new capacity: bytes, or with K, M, G, T.
        #[arg(value_parser = parse_size)]
        size: u64,
        /// Allow shrinking (loses data).
        #[arg(long)]
        shrink: bool,
    },
    /// Write a local file into a volume, with a progress bar on a terminal.
    Upload {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
        /// The local file.
        file: PathBuf,
        /// Create the volume first, as large as the file (gone again if
        /// the upload fails).
        #[arg(long)]
        create: bool,
        /// With --create: its format (raw, qcow2, ...).
        #[arg(long, requires = "create")]
        format: Option<String>,
        /// Byte offset in the volume to start at.
        #[arg(long, value_parser = parse_size, default_value = "0")]
        offset: u64,
    },
    /// Read a volume into a local file, with a progress bar on a terminal.
    Download {
        /// Pool name.
        pool: String,
        /// Volume name.
        name: String,
        /// The local file (created or truncated).
        file: PathBuf,
        /// Byte offset in the volume to start at.
        #[arg(long, value_parser = parse_size, default_value = "0")]
        offset: u64,
        /// Bytes to read; default: to the end.
        #[arg(long, value_parser = parse_size, default_value = "0")]
        length: u64,
    },
}

/// A volume format by short name (`qcow2`) or full.
pub(crate) fn parse_format(s: &str) -> Result<v1::StorageVolumeFormat, Failure> {
    let upper = s.to_ascii_uppercase();
    v1::StorageVolumeFormat::from_str_name(&upper)
        .or_else(|| {
            v1::StorageVolumeFormat::from_str_name(&format!("STORAGE_VOLUME_FORMAT_{upper}"))
        })
        .ok_or_else(|| Failure::Input(format!("unknown volume format {s:?} (raw, qcow2, ...)")))
}

fn pool_out(json: bool, p: Option<v1::StoragePool>) -> Result<(), Failure> {
    let p = p.ok_or_else(|| Failure::missing("pool"))?;
    print_pools(json, std::slice::from_ref(&p), true)
}

pub(crate) async fn run_pool(ctx: &Ctx, cmd: PoolCommand) -> Result<(), Failure> {
    use PoolCommand as C;
    let mut st = ctx.client.storage();
    let json = ctx.json;
    match cmd {
        C::List => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = st
                    .list_storage_pools(ctx.req(v1::ListStoragePoolsRequest {
                        host: ctx.host.clone(),
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                all.extend(page.pools);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_pools(json, &all, false)?;
        }
        C::Info { name } => {
            let p = st
                .get_storage_pool(ctx.req(v1::GetStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Dumpxml { name, inactive } => {
            let xml = st
                .get_storage_pool_xml(ctx.req(v1::GetStoragePoolXmlRequest {
                    pool: ctx.pool_ref(&name),
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
            build,
            start,
            autostart,
        } => {
            let source = match (xml, spec_file) {
                (Some(x), _) => v1::define_storage_pool_request::Source::Xml(read_text(&x)?),
                (None, Some(s)) => v1::define_storage_pool_request::Source::Spec(spec::load(
                    &s,
                    "StoragePoolSpec",
                )?),
                (None, None) => return Err(Failure::Input("--xml or --spec is needed".into())),
            };
            let p = st
                .define_storage_pool(ctx.req(v1::DefineStoragePoolRequest {
                    host: ctx.host.clone(),
                    source: Some(source),
                    build,
                    start,
                    autostart,
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Build { name } => {
            let p = st
                .build_storage_pool(ctx.req(v1::BuildStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                    mode: 0,
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Start { name, build } => {
            let p = st
                .start_storage_pool(ctx.req(v1::StartStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                    build,
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Stop { name } => {
            let p = st
                .stop_storage_pool(ctx.req(v1::StopStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Refresh { name } => {
            let p = st
                .refresh_storage_pool(ctx.req(v1::RefreshStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Delete { name } => {
            let p = st
                .delete_storage_pool(ctx.req(v1::DeleteStoragePoolRequest {
                    pool: ctx.pool_ref(&name),
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
        C::Undefine { name } => {
            st.undefine_storage_pool(ctx.req(v1::UndefineStoragePoolRequest {
                pool: ctx.pool_ref(&name),
            }))
            .await?;
            output::done(json, &name, "undefined");
        }
        C::Autostart { name, value } => {
            let p = st
                .set_storage_pool_autostart(ctx.req(v1::SetStoragePoolAutostartRequest {
                    pool: ctx.pool_ref(&name),
                    autostart: value.on(),
                }))
                .await?
                .into_inner()
                .pool;
            pool_out(json, p)?;
        }
    }
    Ok(())
}

pub(crate) async fn run_vol(ctx: &Ctx, cmd: VolCommand) -> Result<(), Failure> {
    use VolCommand as C;
    let mut st = ctx.client.storage();
    let json = ctx.json;
    match cmd {
        C::List { pool } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = st
                    .list_storage_volumes(ctx.req(v1::ListStorageVolumesRequest {
                        pool: ctx.pool_ref(&pool),
                        page_size: 0,
                        page_token,
                    }))
                    .await?
                    .into_inner();
                all.extend(page.volumes);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            print_vols(json, &all, false)?;
        }
        C::Info { pool, name } => {
            let v = st
                .get_storage_volume(ctx.req(v1::GetStorageVolumeRequest {
                    volume: ctx.vol_ref(&pool, &name),
                }))
                .await?
                .into_inner()
                .volume;
            vol_out(json, v)?;
        }
        C::Dumpxml { pool, name } => {
            let xml = st
                .get_storage_volume_xml(ctx.req(v1::GetStorageVolumeXmlRequest {
                    volume: ctx.vol_ref(&pool, &name),
                }))
                .await?
                .into_inner()
                .xml;
            print_xml(json, &name, &xml);
        }
        C::Create {
            pool,
            name,
            size,
            format,
            allocation,
            xml,
            spec: spec_file,
        } => {
            let source = match (xml, spec_file, name) {
                (Some(x), _, _) => v1::create_storage_volume_request::Source::Xml(read_text(&x)?),
                (None, Some(s), _) => v1::create_storage_volume_request::Source::Spec(spec::load(
                    &s,
                    "StorageVolumeSpec",
                )?),
                (None, None, Some(name)) => {
                    let capacity_bytes =
                        size.ok_or_else(|| Failure::Input("--size is needed with NAME".into()))?;
                    let format = match format {
                        Some(f) => parse_format(&f)? as i32,
                        None => 0,
                    };
                    v1::create_storage_volume_request::Source::Spec(v1::StorageVolumeSpec {
                        name,
                        format,
                        capacity_bytes,
                        allocation_bytes: allocation.unwrap_or(0),
                        ..Default::default()
                    })
                }
                _ => {
                    return Err(Failure::Input(
                        "NAME --size, --xml or --spec is needed".into(),
                    ))
                }
            };
            let v = st
                .create_storage_volume(ctx.req(v1::CreateStorageVolumeRequest {
                    pool: ctx.pool_ref(&pool),
                    source: Some(source),
                }))
                .await?
                .into_inner()
                .volume;
            vol_out(json, v)?;
        }
        C::Delete { pool, name } => {
            st.delete_storage_volume(ctx.req(v1::DeleteStorageVolumeRequest {
                volume: ctx.vol_ref(&pool, &name),
            }))
            .await?;
            output::done(json, &name, "deleted");
        }
        C::Resize {
            pool,
            name,
            size,
            shrink,
        } => {
            let v = st
                .resize_storage_volume(ctx.req(v1::ResizeStorageVolumeRequest {
                    volume: ctx.vol_ref(&pool, &name),
                    capacity_bytes: size,
                    shrink,
                    ..Default::default()
                }))
                .await?
                .into_inner()
                .volume;
            vol_out(json, v)?;
        }
        C::Upload {
            pool,
            name,
            file,
            create,
            format,
            offset,
        } => {
            let format = format.map(|f| parse_format(&f)).transpose()?;
            let r = transfer::upload(ctx, &pool, &name, &file, create, format, offset).await?;
            if json {
                output::print_json(&json!({
                    "volume": r.volume.as_ref().map(|v| output::proto_json("StorageVolume", v)).transpose()?,
                    "file": file,
                    "bytes": r.transfer.bytes,
                    "sha256": r.transfer.sha256,
                    "created": r.created,
                }));
            } else {
                println!(
                    "{name}: {} bytes uploaded from {} (sha256 {})",
                    r.transfer.bytes,
                    file.display(),
                    r.transfer.sha256
                );
            }
        }
        C::Download {
            pool,
            name,
            file,
            offset,
            length,
        } => {
            let t = transfer::download(ctx, &pool, &name, &file, offset, length).await?;
            let (bytes, sha256) = (t.bytes, t.sha256);
            if json {
                output::print_json(
                    &json!({"name": name, "file": file, "bytes": bytes, "sha256": sha256}),
                );
            } else {
                println!(
                    "{name}: {bytes} bytes downloaded to {} (sha256 {sha256})",
                    file.display()
                );
            }
        }
    }
    Ok(())
}

fn vol_out(json: bool, v: Option<v1::StorageVolume>) -> Result<(), Failure> {
    let v = v.ok_or_else(|| Failure::missing("volume"))?;
    print_vols(json, std::slice::from_ref(&v), true)
}

pub(crate) fn print_xml(json: bool, name: &str, xml: &str) {
    if json {
        output::print_json(&json!({"name": name, "xml": xml}));
    } else {
        println!("{}", xml.trim_end());
    }
}

fn print_pools(json: bool, pools: &[v1::StoragePool], one: bool) -> Result<(), Failure> {
    if json {
        let v = if one {
            output::proto_json("StoragePool", &pools[0])?
        } else {
            output::proto_json_array("StoragePool", pools)?
        };
        output::print_json(&v);
        return Ok(());
    }
    let mut t = output::table(&[
        "HOST",
        "NAME",
        "STATE",
        "TYPE",
        "AUTOSTART",
        "CAPACITY (MiB)",
        "AVAILABLE (MiB)",
        "PATH",
    ]);
    for p in pools {
        t.add_row(vec![
            p.host.clone(),
            p.name.clone(),
            output::short_enum("StoragePoolState", p.state().as_str_name()),
            output::short_enum("StoragePoolType", p.r#type().as_str_name()),
            output::yes(p.autostart),
            output::mib(p.capacity_bytes),
            output::mib(p.available_bytes),
            p.target_path.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn print_vols(json: bool, vols: &[v1::StorageVolume], one: bool) -> Result<(), Failure> {
    if json {
        let v = if one {
            output::proto_json("StorageVolume", &vols[0])?
        } else {
            output::proto_json_array("StorageVolume", vols)?
        };
        output::print_json(&v);
        return Ok(());
    }
    let mut t = output::table(&[
        "POOL",
        "NAME",
        "FORMAT",
        "CAPACITY (B)",
        "ALLOCATION (B)",
        "PATH",
    ]);
    for v in vols {
        t.add_row(vec![
            v.pool.clone(),
            v.name.clone(),
            output::short_enum("StorageVolumeFormat", v.format().as_str_name()),
            v.capacity_bytes.to_string(),
            v.allocation_bytes.to_string(),
            v.path.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}
