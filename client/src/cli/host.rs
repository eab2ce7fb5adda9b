//! `hosts` and `host-info`: the server's configured hosts.

use libvirt_grpc_client::v1;
use serde_json::{json, Value};

use super::{output, Ctx, Failure};

pub(crate) async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let hosts = ctx
        .client
        .hosts()
        .list_hosts(ctx.req(v1::ListHostsRequest {}))
        .await?
        .into_inner()
        .hosts;
    let health = |h: &v1::Host| output::short_enum("HostHealth", h.health().as_str_name());
    if ctx.json {
        let all: Vec<Value> = hosts
            .iter()
            .map(|h| {
                json!({"name": h.name, "uri": h.uri, "default": h.is_default,
                       "health": health(h), "last_error": h.last_error})
            })
            .collect();
        output::print_json(&Value::Array(all));
    } else {
        let mut t = output::table(&["NAME", "URI", "DEFAULT", "HEALTH", "LAST ERROR"]);
        for h in &hosts {
            t.add_row(vec![
                h.name.clone(),
                h.uri.clone(),
                output::yes(h.is_default),
                health(h),
                h.last_error.clone(),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

pub(crate) async fn info(ctx: &Ctx) -> Result<(), Failure> {
    let i = ctx
        .client
        .hosts()
        .get_host_info(ctx.req(v1::GetHostInfoRequest {
            host: ctx.host.clone(),
        }))
        .await?
        .into_inner();
    if ctx.json {
        output::print_json(&output::proto_json("GetHostInfoResponse", &i)?);
        return Ok(());
    }
    let node = i.node.unwrap_or_default();
    let mut t = output::table(&["FIELD", "VALUE"]);
    for (k, v) in [
        ("host", i.host),
        ("hostname", i.hostname),
        ("uri", i.uri),
        ("libvirt", i.libvirt_version),
        (
            "hypervisor",
            format!("{} {}", i.hypervisor_type, i.hypervisor_version),
        ),
        ("cpu model", node.cpu_model),
        ("cpus", node.cpus.to_string()),
        ("memory (MiB)", output::mib(node.memory_bytes)),
        ("free memory (MiB)", output::mib(i.free_memory_bytes)),
        ("max vcpus", i.max_vcpus.to_string()),
    ] {
        t.add_row(vec![k.to_owned(), v]);
    }
    println!("{t}");
    Ok(())
}
