//! SnapshotService against libvirt's in-process test driver: a small tree,
//! every listing filter the driver honours, revert and delete.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::Code;
use v1::{create_snapshot_request::Source, DomainRef, SnapshotRef, SnapshotSpec};

const URI: &str = "test:///default";

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

fn snap(d: &str, name: &str) -> Option<SnapshotRef> {
    Some(SnapshotRef {
        domain: dom(d),
        name: name.to_owned(),
    })
}

fn names(v: &[v1::Snapshot]) -> Vec<&str> {
    v.iter().map(|s| s.name.as_str()).collect()
}

async fn create(s: &TestServer, d: &str, name: &str) -> v1::Snapshot {
    s.client
        .snapshots()
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(d),
            source: Some(Source::Spec(SnapshotSpec {
                name: name.into(),
                description: format!("snapshot {name} <&>"),
                ..Default::default()
            })),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap()
}

async fn list(s: &TestServer, r: v1::ListSnapshotsRequest) -> Vec<v1::Snapshot> {
    s.client
        .snapshots()
        .list_snapshots(s.client.request(r))
        .await
        .unwrap()
        .into_inner()
        .snapshots
}

#[tokio::test]
async fn tree_list_revert_delete() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let mut sn = s.client.snapshots();

    let s1 = create(&s, &d, "s1").await;
    assert_eq!(s1.domain, d);
    assert_eq!(s1.description, "snapshot s1 <&>");
    assert_eq!(s1.host, "default");
    assert_eq!(s1.state(), v1::DomainState::Shutoff);
    assert!(!s1.disk_only);
    assert!(s1.parent.is_empty() && s1.current && s1.has_metadata);
    assert_eq!(s1.child_count, 0);
    let created = s1.create_time.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 3600..=now + 60).contains(&created.seconds),
        "{created:?}"
    );
    let s2 = create(&s, &d, "s2").await;
    assert_eq!(s2.parent, "s1");
    // A revert answers the domain and the snapshot as they are afterwards;
    // state UNSPECIFIED keeps the captured state (shut off).
    let reverted = sn
        .revert_snapshot(s.client.request(v1::RevertSnapshotRequest {
            snapshot: snap(&d, "s1"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let rd = reverted.domain.unwrap();
    assert_eq!(rd.name, d);
    assert_eq!(rd.state(), v1::DomainState::Shutoff);
    let rs = reverted.snapshot.unwrap();
    assert!(
        rs.name == "s1" && rs.current && rs.child_count == 1,
        "{rs:?}"
    );
    let cur = sn
        .get_current_snapshot(
            s.client
                .request(v1::GetCurrentSnapshotRequest { domain: dom(&d) }),
        )
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(cur.name, "s1");
    let s3 = create(&s, &d, "s3").await;
    assert_eq!(s3.parent, "s1");

    // The tree: s1 -> {s2, s3}.
    let tree = sn
        .get_snapshot_tree(
            s.client
                .request(v1::GetSnapshotTreeRequest { domain: dom(&d) }),
        )
        .await
        .unwrap()
        .into_inner()
        .roots;
    assert_eq!(tree.len(), 1);
    assert_eq!(tree[0].snapshot.as_ref().unwrap().name, "s1");
    let kids: Vec<_> = tree[0]
        .children
        .iter()
        .map(|n| n.snapshot.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(kids, ["s2", "s3"]);

    let base = v1::ListSnapshotsRequest {
        domain: dom(&d),
        ..Default::default()
    };
    let all = list(&s, base.clone()).await;
    assert_eq!(names(&all), ["s1", "s2", "s3"]);
    let roots = list(
        &s,
        v1::ListSnapshotsRequest {
            parent_filter: v1::SnapshotParentFilter::Roots as i32,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(names(&roots), ["s1"]);
    let leaves = list(
        &s,
        v1::ListSnapshotsRequest {
            leaf_filter: v1::SnapshotLeafFilter::Leaves as i32,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(names(&leaves), ["s2", "s3"]);
    let inner = list(
        &s,
        v1::ListSnapshotsRequest {
            leaf_filter: v1::SnapshotLeafFilter::NonLeaves as i32,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(names(&inner), ["s1"]);
    let inactive = list(
        &s,
        v1::ListSnapshotsRequest {
            state_filter: v1::SnapshotStateFilter::Inactive as i32,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(inactive.len(), 3);
    let active = list(
        &s,
        v1::ListSnapshotsRequest {
            state_filter: v1::SnapshotStateFilter::Active as i32,
            ..base.clone()
        },
    )
    .await;
    assert!(active.is_empty());
    let topo = list(
        &s,
        v1::ListSnapshotsRequest {
            topological: true,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(topo[0].name, "s1");
    // Non-roots (the server's own filter) and AND across axes.
    let children = list(
        &s,
        v1::ListSnapshotsRequest {
            parent_filter: v1::SnapshotParentFilter::Children as i32,
            ..base.clone()
        },
    )
    .await;
    assert_eq!(names(&children), ["s2", "s3"]);
    let root_leaves = list(
        &s,
        v1::ListSnapshotsRequest {
            parent_filter: v1::SnapshotParentFilter::Roots as i32,
            leaf_filter: v1::SnapshotLeafFilter::Leaves as i32,
            ..base.clone()
        },
    )
    .await;
    assert!(root_leaves.is_empty(), "{root_leaves:?}");

    // Paging by one, in both orders.
    for topological in [false, true] {
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let r = sn
                .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
                    page_size: 1,
                    page_token: token.clone(),
                    topological,
                    ..base.clone()
                }))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.snapshots.len(), 1);
            seen.push(r.snapshots[0].name.clone());
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        seen.sort();
        assert_eq!(seen, ["s1", "s2", "s3"]);
    }

    let got = sn
        .get_snapshot(s.client.request(v1::GetSnapshotRequest {
            snapshot: snap(&d, "s2"),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(got.xml.contains("<name>s2</name>"), "{}", got.xml);
    let parent = sn
        .get_snapshot_parent(s.client.request(v1::GetSnapshotParentRequest {
            snapshot: snap(&d, "s3"),
        }))
        .await
        .unwrap()
        .into_inner()
        .parent
        .unwrap();
    assert_eq!(parent.name, "s1");
    let no_parent = sn
        .get_snapshot_parent(s.client.request(v1::GetSnapshotParentRequest {
            snapshot: snap(&d, "s1"),
        }))
        .await;
    assert_eq!(code_of(no_parent), Code::NotFound);
    let kids = sn
        .list_snapshot_children(s.client.request(v1::ListSnapshotChildrenRequest {
            snapshot: snap(&d, "s1"),
            descendants: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(names(&kids), ["s2", "s3"]);

    // Delete the children only: s1 stays, alone.
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, "s1"),
        extent: v1::SnapshotDeleteExtent::DescendantsOnly as i32,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert_eq!(names(&list(&s, base.clone()).await), ["s1"]);
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, "s1"),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(list(&s, base.clone()).await.is_empty());
    let none = sn
        .get_current_snapshot(
            s.client
                .request(v1::GetCurrentSnapshotRequest { domain: dom(&d) }),
        )
        .await;
    assert_eq!(code_of(none), Code::NotFound);
}

#[tokio::test]
async fn snapshot_bad_input() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let mut sn = s.client.snapshots();
    let bad_name = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Spec(SnapshotSpec {
                name: "a/b".into(),
                ..Default::default()
            })),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(bad_name), Code::InvalidArgument);
    let malformed = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Xml("<domainsnapshot><name>".into())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(malformed), Code::InvalidArgument);
    let missing = sn
        .get_snapshot(s.client.request(v1::GetSnapshotRequest {
            snapshot: snap(&d, "nope"),
        }))
        .await;
    assert_eq!(code_of(missing), Code::NotFound);
    let bad_state = sn
        .revert_snapshot(s.client.request(v1::RevertSnapshotRequest {
            snapshot: snap(&d, "nope"),
            state: 9,
            force: false,
        }))
        .await;
    assert_eq!(code_of(bad_state), Code::InvalidArgument);
    let no_dom = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&format!("{p}absent")),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(no_dom), Code::NotFound);
    let listed = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&d),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn halt_and_revert_to_running_or_paused() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    s.client.start_domain(&d).await.unwrap();
    let mut sn = s.client.snapshots();
    let taken = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Spec(SnapshotSpec {
                name: "live".into(),
                ..Default::default()
            })),
            halt: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(taken.state(), v1::DomainState::Running);
    assert_eq!(
        s.client.get_domain(&d).await.unwrap().state(),
        v1::DomainState::Shutoff,
        "halt did not stop the domain"
    );
    let active = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&d),
            state_filter: v1::SnapshotStateFilter::Active as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(names(&active), ["live"]);
    for (state, want) in [
        (v1::SnapshotRevertState::Paused, v1::DomainState::Paused),
        (v1::SnapshotRevertState::Running, v1::DomainState::Running),
    ] {
        let r = sn
            .revert_snapshot(s.client.request(v1::RevertSnapshotRequest {
                snapshot: snap(&d, "live"),
                state: state as i32,
                force: false,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.domain.unwrap().state(), want);
        assert_eq!(s.client.get_domain(&d).await.unwrap().state(), want);
    }
    // The test driver has no metadata-only delete: an honest UNIMPLEMENTED,
    // and the snapshot is still there.
    let meta = sn
        .delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
            snapshot: snap(&d, "live"),
            metadata_only: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(meta), Code::Unimplemented);
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, "live"),
        ..Default::default()
    }))
    .await
    .unwrap();
    let gone = sn
        .get_snapshot(s.client.request(v1::GetSnapshotRequest {
            snapshot: snap(&d, "live"),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
}

#[tokio::test]
async fn snapshot_defaults() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let mut sn = s.client.snapshots();
    // An empty spec name lets libvirt choose (the creation time).
    let auto = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Spec(SnapshotSpec::default())),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(!auto.name.is_empty());
    assert!(auto.description.is_empty() && auto.current);
    let kid = create(&s, &d, "kid").await;
    assert_eq!(kid.parent, auto.name);
    // extent UNSPECIFIED deletes the snapshot alone: its child moves up.
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, &auto.name),
        ..Default::default()
    }))
    .await
    .unwrap();
    let left = list(
        &s,
        v1::ListSnapshotsRequest {
            domain: dom(&d),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(names(&left), ["kid"]);
    assert!(left[0].parent.is_empty(), "{left:?}");
    // descendants false (the default) lists direct children only.
    create(&s, &d, "grandkid").await;
    sn.revert_snapshot(s.client.request(v1::RevertSnapshotRequest {
        snapshot: snap(&d, "kid"),
        ..Default::default()
    }))
    .await
    .unwrap();
    let kids = sn
        .list_snapshot_children(s.client.request(v1::ListSnapshotChildrenRequest {
            snapshot: snap(&d, "kid"),
            descendants: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(names(&kids), ["grandkid"]);
    // WITH_DESCENDANTS removes the whole subtree.
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, "kid"),
        extent: v1::SnapshotDeleteExtent::WithDescendants as i32,
        ..Default::default()
    }))
    .await
    .unwrap();
    let none = list(
        &s,
        v1::ListSnapshotsRequest {
            domain: dom(&d),
            ..Default::default()
        },
    )
    .await;
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn one_bad_request_names_every_bad_field() {
    let s = TestServer::test_driver().await;
    let mut sn = s.client.snapshots();
    let e = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: Some(DomainRef {
                host: String::new(),
                key: None,
            }),
            source: Some(Source::Spec(SnapshotSpec {
                name: "a/b".into(),
                ..Default::default()
            })),
            redefine: true,
            redefine_current: true,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&e), ["domain", "redefine", "spec.name"]);
    let e = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(""),
            // The most negative number once overflowed the filter table's
            // index (a battery finding): a violation like any other.
            parent_filter: i32::MIN,
            leaf_filter: 5,
            location_filter: 5,
            state_filter: 5,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        [
            "domain.name",
            "parent_filter",
            "leaf_filter",
            "location_filter",
            "state_filter"
        ]
    );
    let e = sn
        .delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
            snapshot: Some(SnapshotRef {
                domain: None,
                name: String::new(),
            }),
            extent: 7,
            metadata_only: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        ["snapshot.domain", "snapshot.name", "extent"]
    );
}
