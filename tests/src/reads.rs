//! Read-path checks shared by `real_reads` (a real libvirtd, changes made
//! through virsh) and `fast_reads` (the in-process test driver, changes made
//! through a libvirt connection of the test's own): what `GetDomain` and
//! `ListDomains` answer right after a change made behind the service's back.

use std::collections::{BTreeSet, HashMap};

use crate::{v1, Client};
use v1::{DomainState, DomainView};

/// Both views, BASIC first.
pub const VIEWS: [DomainView; 2] = [DomainView::Basic, DomainView::Full];

/// The two domain reads of one host through the service.
pub struct Reads {
    pub client: Client,
    pub host: String,
}

impl Reads {
    pub fn new(client: &Client, host: &str) -> Self {
        Reads {
            client: client.clone(),
            host: host.to_owned(),
        }
    }

    /// `GetDomain` by name (panics on an error).
    pub async fn get(&self, name: &str, view: DomainView) -> v1::Domain {
        self.try_get(name, view)
            .await
            .unwrap_or_else(|e| panic!("GetDomain {name} ({view:?}): {e}"))
    }

    /// `GetDomain` by name.
    pub async fn try_get(&self, name: &str, view: DomainView) -> Result<v1::Domain, tonic::Status> {
        self.try_get_ref(crate::domain_ref(&self.host, name), view)
            .await
    }

    /// `GetDomain` by UUID.
    pub async fn try_get_uuid(
        &self,
        uuid: &str,
        view: DomainView,
    ) -> Result<v1::Domain, tonic::Status> {
        let r = Some(v1::DomainRef {
            host: self.host.clone(),
            key: Some(v1::domain_ref::Key::Uuid(uuid.to_owned())),
        });
        self.try_get_ref(r, view).await
    }

    async fn try_get_ref(
        &self,
        domain: Option<v1::DomainRef>,
        view: DomainView,
    ) -> Result<v1::Domain, tonic::Status> {
        Ok(self
            .client
            .domains()
            .get_domain(v1::GetDomainRequest {
                domain,
                view: view as i32,
            })
            .await?
            .into_inner()
            .domain
            .expect("GetDomain answered no domain"))
    }

    /// Every domain `ListDomains` answers for `name_prefix`, every page.
    pub async fn list(&self, name_prefix: &str, view: DomainView) -> Vec<v1::Domain> {
        self.list_with(name_prefix, view, |_| {}).await
    }

    /// As [`Reads::list`], with the request changed by `tune`.
    pub async fn list_with(
        &self,
        name_prefix: &str,
        view: DomainView,
        tune: impl Fn(&mut v1::ListDomainsRequest),
    ) -> Vec<v1::Domain> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut req = v1::ListDomainsRequest {
                host: self.host.clone(),
                name_prefix: name_prefix.into(),
                page_size: 1000,
                page_token: token,
                view: view as i32,
                ..Default::default()
            };
            tune(&mut req);
            let page = self
                .client
                .domains()
                .list_domains(req)
                .await
                .unwrap()
                .into_inner();
            out.extend(page.domains);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Domain `name` as `GetDomain` and as `ListDomains` answer it, in
    /// `view`; the listing must hold it exactly once.
    pub async fn both(&self, name: &str, view: DomainView) -> [v1::Domain; 2] {
        let got = self.get(name, view).await;
        let listed: Vec<_> = self
            .list(name, view)
            .await
            .into_iter()
            .filter(|d| d.name == name)
            .collect();
        assert_eq!(
            listed.len(),
            1,
            "{name} listed {} times ({view:?})",
            listed.len()
        );
        [got, listed.into_iter().next().unwrap()]
    }

    /// Asserts `check` on `name` as both reads answer it, in each of
    /// `views`; `what` names the change just made, for the message.
    pub async fn expect(
        &self,
        name: &str,
        views: &[DomainView],
        what: &str,
        check: impl Fn(&v1::Domain) -> bool,
    ) {
        for view in views {
            for (read, d) in ["GetDomain", "ListDomains"]
                .iter()
                .zip(self.both(name, *view).await)
            {
                assert!(check(&d), "{read} ({view:?}) after {what}: {d:?}");
            }
        }
    }

    /// Asserts that neither read knows `name` any more (NOT_FOUND, not
    /// listed), in both views.
    pub async fn expect_gone(&self, name: &str, what: &str) {
        for view in VIEWS {
            let r = self.try_get(name, view).await;
            assert_eq!(
                r.as_ref().map_err(|e| e.code()).err(),
                Some(tonic::Code::NotFound),
                "GetDomain {name} ({view:?}) after {what}: {r:?}"
            );
            let listed = self.list(name, view).await;
            assert!(
                listed.iter().all(|d| d.name != name),
                "ListDomains ({view:?}) after {what}: {listed:?}"
            );
        }
    }

    /// Lists every domain named `prefix*` in pages of 37 while, between
    /// pages, `define` adds two domains (one ahead of the listing's
    /// position, one behind it) and `undefine` removes an older one. Each
    /// of `stable` (named `{prefix}sNNNN`, defined inactive, untouched
    /// during the listing) must be listed exactly once, nothing twice,
    /// names strictly increasing across pages, nothing that was never
    /// defined. Churn domains are named `{prefix}sNNNNcK` so they sort
    /// among the stable ones; those left are undefined at the end.
    pub async fn paging_under_churn(
        &self,
        prefix: &str,
        stable: &[String],
        view: DomainView,
        define: &(dyn Fn(&[String]) + Sync),
        undefine: &(dyn Fn(&[String]) + Sync),
    ) {
        let stable_set: BTreeSet<&str> = stable.iter().map(String::as_str).collect();
        let mut alive: Vec<String> = Vec::new();
        let mut ever: BTreeSet<String> = BTreeSet::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut last: Option<String> = None;
        let mut token = String::new();
        let mut pages = 0usize;
        let mut seq = 0usize;
        loop {
            let page = self
                .client
                .domains()
                .list_domains(v1::ListDomainsRequest {
                    host: self.host.clone(),
                    name_prefix: prefix.to_owned(),
                    page_size: 37,
                    page_token: token,
                    view: view as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(
                page.domains.len() <= 37,
                "{} on one page",
                page.domains.len()
            );
            for d in &page.domains {
                assert!(
                    last.as_deref().is_none_or(|l| l < d.name.as_str()),
                    "{view:?}: {} after {last:?}",
                    d.name
                );
                last = Some(d.name.clone());
                *counts.entry(d.name.clone()).or_default() += 1;
                assert!(
                    stable_set.contains(d.name.as_str()) || ever.contains(&d.name),
                    "{view:?}: {} was never defined",
                    d.name
                );
                assert_eq!(d.state(), DomainState::Shutoff, "{d:?}");
                assert!(!d.uuid.is_empty() && d.host == self.host, "{d:?}");
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;

            let n = stable.len().max(1);
            let ahead = (pages * 37 + 50 + pages * 13) % n;
            let behind = (pages * 37).saturating_sub(20) % n;
            let new: Vec<String> = [ahead, behind]
                .iter()
                .map(|i| {
                    seq += 1;
                    format!("{prefix}s{i:04}c{seq}")
                })
                .collect();
            let gone: Vec<String> = if alive.len() > 4 {
                vec![alive.remove(0)]
            } else {
                Vec::new()
            };
            tokio::task::block_in_place(|| {
                define(&new);
                undefine(&gone);
            });
            ever.extend(new.iter().cloned());
            alive.extend(new);
        }
        assert!(
            pages > stable.len() / 37,
            "{view:?}: only {pages} pages for {} domains",
            stable.len()
        );
        for n in stable {
            assert_eq!(
                counts.get(n).copied().unwrap_or(0),
                1,
                "{view:?}: stable {n} listed {:?} times",
                counts.get(n)
            );
        }
        let dup: Vec<_> = counts.iter().filter(|(_, k)| **k > 1).collect();
        assert!(dup.is_empty(), "{view:?}: listed twice: {dup:?}");
        tokio::task::block_in_place(|| undefine(&alive));
    }
}

/// What each domain of [`Reads::concurrent_reads`] must answer: its
/// UUID now, `None` when it does not exist.
pub type Expected = HashMap<String, Option<String>>;

impl Reads {
    /// Concurrent reads in `view`, which the server makes together (one
    /// libvirt call for the reads of a host in flight at once in a view,
    /// plus, in the full view, three listings), each answer their own
    /// domain and nothing older than the last change. In
    /// each of `rounds` rounds, `churn(round, &mut expected)` changes
    /// domains behind the service's back (undefines some, defines others
    /// anew under the same name and a new UUID) and records what each name
    /// must answer now; then every name is read by `per_name` callers at
    /// once, by name and by UUID, and every answer is checked: the name,
    /// the UUID, shut off (in the full view also persistent, no autostart,
    /// no managed-save image, 128 MiB, one vCPU); NOT_FOUND for a domain
    /// that is gone. Answers what the domains are at the end.
    pub async fn concurrent_reads(
        &self,
        view: DomainView,
        names: &[String],
        per_name: usize,
        rounds: usize,
        mut churn: impl FnMut(usize, &mut Expected),
        mut expected: Expected,
    ) -> Expected {
        for round in 0..rounds {
            if round > 0 {
                churn(round, &mut expected);
            }
            let mut calls = tokio::task::JoinSet::new();
            for name in names {
                let want = expected.get(name).cloned().flatten();
                for k in 0..per_name {
                    let (reads, name, want) = (self.clone_handle(), name.clone(), want.clone());
                    calls.spawn(async move {
                        let by_uuid = k % 2 == 1 && want.is_some();
                        let got = match (&want, by_uuid) {
                            (Some(u), true) => reads.try_get_uuid(u, view).await,
                            _ => reads.try_get(&name, view).await,
                        };
                        let ok = match (&want, &got) {
                            (Some(u), Ok(d)) => {
                                &d.uuid == u
                                    && d.name == name
                                    && d.state() == DomainState::Shutoff
                                    && (view == DomainView::Basic
                                        || (d.persistent
                                            && !d.autostart
                                            && !d.has_managed_save
                                            && d.memory_bytes == 128 << 20
                                            && d.vcpus == 1))
                            }
                            (None, Err(e)) => e.code() == tonic::Code::NotFound,
                            _ => false,
                        };
                        (!ok).then(|| format!("{name} (want {want:?}, by uuid {by_uuid}): {got:?}"))
                    });
                }
            }
            let mut wrong = Vec::new();
            while let Some(r) = calls.join_next().await {
                wrong.extend(r.unwrap());
            }
            assert!(
                wrong.is_empty(),
                "round {round} ({view:?}): {} of {} reads wrong, first: {:?}",
                wrong.len(),
                names.len() * per_name,
                wrong.first()
            );
        }
        expected
    }

    fn clone_handle(&self) -> Reads {
        Reads::new(&self.client, &self.host)
    }
}

impl Reads {
    /// Defines `names` through `define`, then [`Reads::concurrent_reads`]
    /// in each view, 4 callers a name, 6 rounds of [`churn_round`] each.
    pub async fn concurrent_reads_under_churn(
        &self,
        names: &[String],
        define: &dyn Fn(&str) -> String,
        undefine: &dyn Fn(&str),
    ) {
        let mut expected: Expected = names.iter().map(|n| (n.clone(), Some(define(n)))).collect();
        for view in VIEWS {
            expected = self
                .concurrent_reads(
                    view,
                    names,
                    4,
                    6,
                    |round, e| churn_round(names, round, e, define, undefine),
                    expected,
                )
                .await;
        }
    }
}

/// The churn of [`Reads::concurrent_reads`] in `round`: of every
/// three names, one that exists is undefined (one that does not is
/// defined), one is undefined and defined anew (a new UUID under the same
/// name), one is left alone; which, moves with the round. `define`
/// returns the new domain's UUID.
pub fn churn_round(
    names: &[String],
    round: usize,
    expected: &mut Expected,
    define: &dyn Fn(&str) -> String,
    undefine: &dyn Fn(&str),
) {
    for (i, name) in names.iter().enumerate() {
        let exists = expected.get(name).is_some_and(Option::is_some);
        match (i + round) % 3 {
            0 if exists => {
                undefine(name);
                expected.insert(name.clone(), None);
            }
            0 => {
                expected.insert(name.clone(), Some(define(name)));
            }
            1 if exists => {
                undefine(name);
                expected.insert(name.clone(), Some(define(name)));
            }
            _ => {}
        }
    }
}
