//! Device numbers: the major and minor parts of a Linux `dev_t` (`st_rdev`), as the OCI
//! spec and the device cgroup name them.

/// Major number of a Linux `dev_t` (glibc's `gnu_dev_major`).
pub fn major(dev: u64) -> i64 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as i64
}

/// Minor number of a Linux `dev_t` (glibc's `gnu_dev_minor`).
pub fn minor(dev: u64) -> i64 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_arithmetic() {
        // makedev(1, 3) and a large one: makedev(0x12345, 0x6789a)
        assert_eq!((major(0x103), minor(0x103)), (1, 3));
        let dev: u64 = ((0x12345u64 & 0xfffff000) << 32)
            | ((0x12345u64 & 0xfff) << 8)
            | ((0x6789au64 & 0xffffff00) << 12)
            | (0x6789au64 & 0xff);
        assert_eq!((major(dev), minor(dev)), (0x12345, 0x6789a));
        assert_eq!(
            (major(dev) as u32, minor(dev) as u32),
            (libc::major(dev), libc::minor(dev))
        );
    }
}
