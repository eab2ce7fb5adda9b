//! `events`: one line per event as it arrives, the stream resumed by the
//! client after a drop (no event twice, a gap said explicitly).

use std::io::Write;

use libvirt_grpc_client::v1;
use serde_json::json;
use tokio_stream::StreamExt;

use super::{Ctx, Failure};

/// Which events, and for how long.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    /// Keep following (resuming by itself after a dropped stream);
    /// without it, stop after --count events.
    #[arg(long)]
    follow: bool,
    /// Stop after this many events (default without --follow: 1).
    #[arg(long)]
    count: Option<u64>,
    /// Only events of these domain (or pool, network) names, repeatable.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Only these kinds, repeatable: lifecycle, reboot, device-added,
    /// device-removed, agent-lifecycle, block-job, io-error,
    /// balloon-change, storage-pool-lifecycle, network-lifecycle, ...
    #[arg(long = "kind", value_parser = parse_kind)]
    kinds: Vec<i32>,
    /// Only events about these object types, repeatable: domain,
    /// storage-pool, network, host.
    #[arg(long = "type", value_parser = parse_type)]
    types: Vec<i32>,
    /// Only objects with these UUIDs, repeatable.
    #[arg(long = "uuid")]
    uuids: Vec<String>,
    /// Replay the events after this sequence first (as `list --json`
    /// scripts or an earlier `events --json` saw it), then go on live.
    #[arg(long, requires = "epoch")]
    after: Option<u64>,
    /// The server epoch `--after` belongs to (a restarted server has a new
    /// one: then the gap is reported and only live events follow).
    #[arg(long, requires = "after")]
    epoch: Option<String>,
}

fn parse_kind(s: &str) -> Result<i32, String> {
    let up = s.to_ascii_uppercase().replace('-', "_");
    v1::EventKind::from_str_name(&up)
        .or_else(|| v1::EventKind::from_str_name(&format!("EVENT_KIND_{up}")))
        .filter(|k| *k != v1::EventKind::Unspecified)
        .map(|k| k as i32)
        .ok_or_else(|| format!("unknown event kind {s:?}"))
}

fn parse_type(s: &str) -> Result<i32, String> {
    let up = s.to_ascii_uppercase().replace('-', "_");
    v1::ObjectType::from_str_name(&up)
        .or_else(|| v1::ObjectType::from_str_name(&format!("OBJECT_TYPE_{up}")))
        .filter(|k| *k != v1::ObjectType::Unspecified)
        .map(|k| k as i32)
        .ok_or_else(|| format!("unknown object type {s:?}"))
}

/// One event as one line of JSON or text.
pub(crate) fn event_line(json: bool, e: &v1::Event) -> String {
    let kind = e.kind().as_str_name().trim_start_matches("EVENT_KIND_");
    let object = e
        .object_type()
        .as_str_name()
        .trim_start_matches("OBJECT_TYPE_");
    let detail = match &e.details {
        Some(v1::event::Details::Lifecycle(l)) => l
            .event()
            .as_str_name()
            .trim_start_matches("DOMAIN_LIFECYCLE_EVENT_")
            .to_owned(),
        Some(v1::event::Details::StoragePoolLifecycle(l)) => l
            .event()
            .as_str_name()
            .trim_start_matches("STORAGE_POOL_LIFECYCLE_EVENT_")
            .to_owned(),
        Some(v1::event::Details::NetworkLifecycle(l)) => l
            .event()
            .as_str_name()
            .trim_start_matches("NETWORK_LIFECYCLE_EVENT_")
            .to_owned(),
        Some(v1::event::Details::Device(d)) => d.alias.clone(),
        _ => String::new(),
    };
    let time = e.event_time.map(|t| t.to_string()).unwrap_or_default();
    if json {
        json!({
            "sequence": e.sequence,
            "epoch": e.epoch,
            "time": time,
            "host": e.host,
            "object_type": object,
            "name": e.name,
            "uuid": e.uuid,
            "kind": kind,
            "detail": detail,
        })
        .to_string()
    } else {
        format!(
            "{:>6} {time} {:<12} {:<32} {kind} {detail}",
            e.sequence, e.host, e.name
        )
        .trim_end()
        .to_owned()
    }
}

pub(crate) async fn run(ctx: &Ctx, a: EventsArgs) -> Result<(), Failure> {
    let limit = match (a.follow, a.count) {
        (_, Some(n)) => Some(n),
        (true, None) => None,
        (false, None) => Some(1),
    };
    let filter = v1::WatchEventsRequest {
        names: a.names,
        kinds: a.kinds,
        object_types: a.types,
        uuids: a.uuids,
        resume_after: a.after,
        epoch: a.epoch.unwrap_or_default(),
        hosts: if ctx.host.is_empty() {
            Vec::new()
        } else {
            vec![ctx.host.clone()]
        },
    };
    let mut stream = ctx.client.watch(filter);
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    while limit.is_none_or(|n| seen < n) {
        let Some(item) = stream.next().await else {
            break;
        };
        match item?.item {
            Some(v1::watch_events_response::Item::Event(e)) => {
                seen += 1;
                // A reader that went away (a closed pipe) ends the tool.
                if writeln!(out, "{}", event_line(ctx.json, &e)).is_err() || out.flush().is_err() {
                    break;
                }
            }
            Some(v1::watch_events_response::Item::EventsLost(l)) => {
                eprintln!(
                    "libvirt-grpc: events {}..{} lost ({})",
                    l.from_sequence,
                    l.to_sequence,
                    l.reason().as_str_name().trim_start_matches("LOSS_REASON_")
                );
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_types_by_short_name() {
        assert_eq!(parse_kind("lifecycle"), Ok(v1::EventKind::Lifecycle as i32));
        assert_eq!(
            parse_kind("device-added"),
            Ok(v1::EventKind::DeviceAdded as i32)
        );
        assert!(parse_kind("unspecified").is_err());
        assert_eq!(
            parse_type("storage-pool"),
            Ok(v1::ObjectType::StoragePool as i32)
        );
    }
}
