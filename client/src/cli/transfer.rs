//! Transfers between local files and volumes or guest files, through the
//! client crate's file helpers (`files.rs`: chunking, SHA-256 checks, a
//! download written to a temporary file and renamed into place), with
//! their progress drawn as a bar on stderr when it is a terminal.

use std::path::Path;

use indicatif::ProgressBar;
use libvirt_grpc_client::{v1, DownloadOptions, Progress, Transfer, UploadOptions, VolumeUpload};

use super::{output, Ctx, Failure};

/// A progress callback drawing on `bar` (created on the first report,
/// when the total is known).
fn on_bar<'a>(bar: &'a mut Option<ProgressBar>, what: &'a str) -> impl FnMut(Progress) + 'a {
    move |p: Progress| {
        let b = bar.get_or_insert_with(|| output::progress(p.total, what));
        if let Some(t) = p.total {
            b.set_length(t);
        }
        b.set_position(p.done);
    }
}

fn clear(bar: Option<ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// Uploads `file` into the volume `pool`/`name` (created first as large
/// as the file with `create`).
pub(crate) async fn upload(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    file: &Path,
    create: bool,
    format: Option<v1::StorageVolumeFormat>,
    offset: u64,
) -> Result<VolumeUpload, Failure> {
    let options = UploadOptions {
        create: create.then(|| v1::StorageVolumeSpec {
            format: format.map(|f| f as i32).unwrap_or(0),
            ..Default::default()
        }),
        offset_bytes: offset,
        ..Default::default()
    };
    let what = format!("uploading {name}");
    let mut bar = None;
    let r = ctx
        .long
        .upload_volume(
            ctx.vol_ref(pool, name).unwrap_or_default(),
            file,
            options,
            on_bar(&mut bar, &what),
        )
        .await;
    clear(bar);
    Ok(r?)
}

/// Downloads the volume `pool`/`name` into `file` (replacing it).
pub(crate) async fn download(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    file: &Path,
    offset: u64,
    length: u64,
) -> Result<Transfer, Failure> {
    let options = DownloadOptions {
        overwrite: true,
        offset_bytes: offset,
        length_bytes: length,
    };
    let what = format!("downloading {name}");
    let mut bar = None;
    let r = ctx
        .long
        .download_volume(
            ctx.vol_ref(pool, name).unwrap_or_default(),
            file,
            options,
            on_bar(&mut bar, &what),
        )
        .await;
    clear(bar);
    Ok(r?)
}

/// Writes the local `file` to `guest_path` in the guest.
pub(crate) async fn guest_put(
    ctx: &Ctx,
    domain: &str,
    file: &Path,
    guest_path: &str,
    append: bool,
) -> Result<Transfer, Failure> {
    let what = format!("writing {guest_path}");
    let mut bar = None;
    let r = ctx
        .long
        .write_guest_file(
            ctx.long.domain_ref(domain),
            file,
            guest_path,
            append,
            on_bar(&mut bar, &what),
        )
        .await;
    clear(bar);
    Ok(r?)
}

/// Reads `guest_path` in the guest into the local `file` (replacing it).
pub(crate) async fn guest_get(
    ctx: &Ctx,
    domain: &str,
    guest_path: &str,
    file: &Path,
) -> Result<Transfer, Failure> {
    let what = format!("reading {guest_path}");
    let mut bar = None;
    let r = ctx
        .long
        .read_guest_file(
            ctx.long.domain_ref(domain),
            guest_path,
            file,
            true,
            on_bar(&mut bar, &what),
        )
        .await;
    clear(bar);
    Ok(r?)
}
