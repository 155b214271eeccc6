//! Per-interface byte and error counters of a network namespace, read from `/proc/<pid>/net/dev`.

use std::fs;
use std::io;

/// Counters of one network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// Column indexes of the numbers after the colon.
const RX_BYTES: usize = 0;
const RX_PACKETS: usize = 1;
const RX_ERRORS: usize = 2;
const RX_DROPPED: usize = 3;
const TX_BYTES: usize = 8;
const TX_PACKETS: usize = 9;
const TX_ERRORS: usize = 10;
const TX_DROPPED: usize = 11;

/// Parses the text of /proc/<pid>/net/dev. Skips `lo`, the header lines and malformed lines.
pub fn parse(text: &str) -> Vec<Interface> {
    text.lines().filter_map(parse_line).filter(|i| i.name != "lo").collect()
}

/// Reads /proc/<pid>/net/dev: the counters of the network namespace `pid` is in (no setns needed).
pub fn read(pid: u32) -> io::Result<Vec<Interface>> {
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
    Ok(parse(&text))
}

fn parse_line(line: &str) -> Option<Interface> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let numbers = parse_numbers(rest)?;
    let at = |i: usize| numbers.get(i).copied();
    Some(Interface {
        name: name.to_string(),
        rx_bytes: at(RX_BYTES)?,
        rx_errors: at(RX_ERRORS)?,
        tx_bytes: at(TX_BYTES)?,
        tx_errors: at(TX_ERRORS)?,
        rx_packets: at(RX_PACKETS)?,
        rx_dropped: at(RX_DROPPED)?,
        tx_packets: at(TX_PACKETS)?,
        tx_dropped: at(TX_DROPPED)?,
    })
}

fn parse_numbers(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|f| f.parse::<u64>().ok()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 3124028439  151414    0    0    0     0          0         0 3124028439  151414    0    0    0     0       0          0
  eth0: 266899495   13480    4    0    0     0          0         0   798549    7938    5    0    0     0       0          0
veth1234abcd:1234 10 1 0 0 0 0 0 5678 20 2 0 0 0 0 0
  bad0: 1 2 3
  bad1: x 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    fn iface(name: &str, rx_bytes: u64, rx_errors: u64, tx_bytes: u64, tx_errors: u64) -> Interface {
        Interface {
            name: name.to_string(),
            rx_bytes,
            rx_errors,
            tx_bytes,
            tx_errors,
            ..Default::default()
        }
    }

    #[test]
    fn parses_sample() {
        let want = vec![
            Interface {
                rx_packets: 13480,
                tx_packets: 7938,
                ..iface("eth0", 266899495, 4, 798549, 5)
            },
            Interface {
                rx_packets: 10,
                tx_packets: 20,
                ..iface("veth1234abcd", 1234, 1, 5678, 2)
            },
        ];
        assert_eq!(parse(SAMPLE), want);
    }

    #[test]
    fn empty_text() {
        assert!(parse("").is_empty());
    }

    #[test]
    fn reads_own_namespace() {
        read(std::process::id()).unwrap();
    }
}
