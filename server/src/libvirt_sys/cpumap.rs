//! libvirt's CPU maps: one bit per host CPU, CPU 0 in the lowest bit of the
//! first byte (`VIR_CPU_MAPLEN`, `VIR_USE_CPU`, `VIR_CPU_USABLE`).

/// Bytes of a map for `host_cpus` CPUs (at least one).
pub fn map_len(host_cpus: u32) -> usize {
    host_cpus.div_ceil(8).max(1) as usize
}

/// The map of `cpus`, each below `host_cpus` (the caller checked).
pub fn map_of(cpus: &[u32], host_cpus: u32) -> Vec<u8> {
    let mut map = vec![0u8; map_len(host_cpus)];
    for &cpu in cpus {
        if let Some(byte) = map.get_mut((cpu / 8) as usize) {
            *byte |= 1 << (cpu % 8);
        }
    }
    map
}

/// The CPUs set in `map`, ascending, among the first `host_cpus`.
pub fn cpus_in(map: &[u8], host_cpus: u32) -> Vec<u32> {
    (0..host_cpus)
        .filter(|cpu| {
            map.get((cpu / 8) as usize)
                .is_some_and(|b| b & (1 << (cpu % 8)) != 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip() {
        assert_eq!(map_len(0), 1);
        assert_eq!(map_len(8), 1);
        assert_eq!(map_len(9), 2);
        let m = map_of(&[0, 3, 9], 12);
        assert_eq!(m, vec![0b0000_1001, 0b0000_0010]);
        assert_eq!(cpus_in(&m, 12), vec![0, 3, 9]);
        // Bits beyond the host's CPUs are not CPUs.
        assert_eq!(cpus_in(&[0xff], 3), vec![0, 1, 2]);
    }
}
