//! The tunables families (memory, NUMA, blkio, interface, block I/O) on the
//! in-process test driver, which implements all five: values set in
//! libvirt's types and read back, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, domain_ref, v1, TestServer};
use tonic::Code;
use v1::typed_parameter::Value;

fn test_dom() -> Option<v1::DomainRef> {
    domain_ref("default", "test")
}

fn uint(field: &str, v: u64) -> v1::TypedParameter {
    v1::TypedParameter {
        field: field.into(),
        r#type: 0,
        value: Some(Value::UintValue(v)),
    }
}

fn find<'a>(params: &'a [v1::TypedParameter], field: &str) -> &'a v1::TypedParameter {
    params
        .iter()
        .find(|p| p.field == field)
        .unwrap_or_else(|| panic!("no {field} in {params:?}"))
}

#[tokio::test]
async fn memory_numa_and_blkio_parameters() {
    let s = TestServer::test_driver().await;
    let mut d = s.client.domains();
    let mem = d
        .get_domain_memory_parameters(v1::GetDomainMemoryParametersRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    let hard = find(&mem, "hard_limit");
    assert_eq!(hard.r#type(), v1::TypedParameterType::Ullong, "{hard:?}");
    let set = d
        .set_domain_memory_parameters(v1::SetDomainMemoryParametersRequest {
            domain: test_dom(),
            parameters: vec![uint("hard_limit", 1 << 20)],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(
        find(&set, "hard_limit").value,
        Some(Value::UintValue(1 << 20))
    );
    // Read again: the change is libvirt's, not the answer's.
    let again = d
        .get_domain_memory_parameters(v1::GetDomainMemoryParametersRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(
        find(&again, "hard_limit").value,
        Some(Value::UintValue(1 << 20))
    );

    // A field the family lacks: named in the error, nothing changed.
    let e = d
        .set_domain_memory_parameters(v1::SetDomainMemoryParametersRequest {
            domain: test_dom(),
            parameters: vec![uint("soft_limit", 1 << 19), uint("no_such_limit", 1)],
            scope: None,
        })
        .await
        .expect_err("an unknown field");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("hard_limit"),
        "the known fields are named: {e:?}"
    );
    let after = d
        .get_domain_memory_parameters(v1::GetDomainMemoryParametersRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(find(&after, "soft_limit"), find(&mem, "soft_limit"));
    // A value that does not fit libvirt's type (a string for a number).
    let r = d
        .set_domain_memory_parameters(v1::SetDomainMemoryParametersRequest {
            domain: test_dom(),
            parameters: vec![v1::TypedParameter {
                field: "hard_limit".into(),
                r#type: 0,
                value: Some(Value::StringValue("lots".into())),
            }],
            scope: None,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    // Put hard_limit back.
    d.set_domain_memory_parameters(v1::SetDomainMemoryParametersRequest {
        domain: test_dom(),
        parameters: vec![hard.clone()],
        scope: None,
    })
    .await
    .unwrap();

    let numa = d
        .get_domain_numa_parameters(v1::GetDomainNumaParametersRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(
        find(&numa, "numa_mode").r#type(),
        v1::TypedParameterType::Int
    );
    assert_eq!(
        find(&numa, "numa_nodeset").r#type(),
        v1::TypedParameterType::String
    );

    let blkio = d
        .set_domain_blkio_parameters(v1::SetDomainBlkioParametersRequest {
            domain: test_dom(),
            parameters: vec![uint("weight", 500)],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(find(&blkio, "weight").value, Some(Value::UintValue(500)));
    s.stop().await;
}

#[tokio::test]
async fn interface_and_block_io_tunables_of_one_device() {
    let s = TestServer::test_driver().await;
    let mut d = s.client.domains();
    let nic = d
        .set_domain_interface_parameters(v1::SetDomainInterfaceParametersRequest {
            domain: test_dom(),
            device: "testnet0".into(),
            parameters: vec![uint("inbound.average", 1000)],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(
        find(&nic, "inbound.average").value,
        Some(Value::UintValue(1000))
    );
    let disk = d
        .set_domain_block_io_tune(v1::SetDomainBlockIoTuneRequest {
            domain: test_dom(),
            device: "vda".into(),
            // libvirt checks a limit against its burst maximum.
            parameters: vec![
                uint("total_bytes_sec", 1 << 20),
                uint("total_bytes_sec_max", 2 << 20),
            ],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(
        find(&disk, "total_bytes_sec").value,
        Some(Value::UintValue(1 << 20))
    );
    let read = d
        .get_domain_block_io_tune(v1::GetDomainBlockIoTuneRequest {
            domain: test_dom(),
            config: false,
            device: "vda".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    assert_eq!(read, disk);
    // The device is required for these two, refused for the others.
    let r = d
        .get_domain_block_io_tune(v1::GetDomainBlockIoTuneRequest {
            domain: test_dom(),
            config: false,
            device: String::new(),
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    let r = d
        .get_domain_block_io_tune(v1::GetDomainBlockIoTuneRequest {
            domain: test_dom(),
            config: false,
            device: "vdz".into(),
        })
        .await;
    let code = code_of(r);
    assert!(
        matches!(code, Code::InvalidArgument | Code::NotFound),
        "{code:?}"
    );
    // Back to no limit.
    d.set_domain_block_io_tune(v1::SetDomainBlockIoTuneRequest {
        domain: test_dom(),
        device: "vda".into(),
        parameters: vec![uint("total_bytes_sec", 0), uint("total_bytes_sec_max", 0)],
        scope: None,
    })
    .await
    .unwrap();
    s.stop().await;
}
