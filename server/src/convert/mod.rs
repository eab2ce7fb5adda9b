//! Conversions between the API's messages and libvirt's values, one module
//! per subject, each table written once: services turn requests into `ops`
//! inputs (`TryFrom`) and `ops` answers into messages (`From`) here.

pub mod agent;
pub mod blockjob;
pub mod domain;
pub mod host;
pub mod internals;
pub mod network;
pub mod snapshot;
pub mod state;
pub mod storage;
pub mod time;
pub mod tuning;

/// The OR of the libvirt flags whose request boolean is set.
pub fn flags_of(pairs: &[(bool, u32)]) -> u32 {
    pairs
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, f)| acc | f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_of_ors_the_set_ones() {
        assert_eq!(super::flags_of(&[(true, 1), (false, 2), (true, 8)]), 9);
        assert_eq!(super::flags_of(&[]), 0);
    }
}
