//! `berthctl tag` and `berthctl history`.

use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use super::{explain, human_size, print_table, request};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Show full digests and commands.
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

pub async fn tag(
    client: &mut ImagesClient<Channel>,
    source: String,
    target: String,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    client
        .tag_image(request(pb::TagImageRequest { source, target }, timeout))
        .await
        .map_err(explain)?;
    Ok(())
}

pub async fn history(
    client: &mut ImagesClient<Channel>,
    args: HistoryArgs,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    let h = client
        .image_history(request(
            pb::ImageHistoryRequest {
                image: args.image.clone(),
            },
            timeout,
        ))
        .await
        .map_err(explain)?
        .into_inner();
    if let Format::Json = args.output {
        let entries: Vec<_> = h
            .entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "created": e.created,
                    "createdBy": e.created_by,
                    "author": e.author,
                    "comment": e.comment,
                    "emptyLayer": e.empty_layer,
                    "layer": e.layer_digest,
                    "size": e.size,
                })
            })
            .collect();
        let out = serde_json::json!({"id": h.id, "history": entries});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let rows: Vec<Vec<String>> = h
        .entries
        .iter()
        .rev()
        .map(|e| {
            let layer = if e.layer_digest.is_empty() {
                "<missing>".to_string()
            } else if args.no_trunc {
                e.layer_digest.clone()
            } else {
                e.layer_digest.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created = match unix_time(&e.created) {
                Some(t) if !args.no_trunc => ago(now - t),
                _ if e.created.is_empty() => "<unknown>".to_string(),
                _ => e.created.clone(),
            };
            let by = e.created_by.replace('\t', " ");
            let by = if args.no_trunc || by.chars().count() <= 45 {
                by
            } else {
                format!("{}…", by.chars().take(44).collect::<String>())
            };
            vec![layer, created, by, human_size(e.size), e.comment.clone()]
        })
        .collect();
    print_table(&["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows);
    Ok(())
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `+01:00`…).
fn unix_time(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let mut c = clock.split('.').next()?.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    let offset = match zone.as_bytes().first() {
        Some(sign @ (b'+' | b'-')) => {
            let (oh, om) = zone[1..].split_once(':')?;
            let secs = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => 0,
    };
    // Days from the civil date (proleptic Gregorian), 1970-01-01 being day 0.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

fn ago(secs: i64) -> String {
    let (n, unit) = match secs.max(0) {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 30 => (s / 86_400, "day"),
        s if s < 86_400 * 365 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_time("2024-02-29T12:00:00.123456789Z"), Some(1_709_208_000));
        assert_eq!(unix_time("2024-02-29T13:00:00+01:00"), Some(1_709_208_000));
        assert_eq!(unix_time("garbage"), None);
        assert_eq!(ago(3 * 86_400), "3 days ago");
        assert_eq!(ago(1), "1 second ago");
    }
}
