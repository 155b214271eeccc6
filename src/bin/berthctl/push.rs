//! `berthctl push`: pushes an image through `berth.v1.Images/PushImage`, one line per blob
//! as it changes state (on stderr), then Docker's summary line on stdout.

use std::collections::HashMap;

use berth::image::reference::Reference;
use berth_proto::berth::v1 as pb;
use berth_proto::berth::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use crate::api::creds::CredsArgs;
use crate::explain;
use crate::output::human_size;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The image, as named here: NAME[:TAG] (the registry is the name's host).
    pub image: String,
    /// Print only NAME@DIGEST of what was pushed.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub creds: CredsArgs,
}

/// The line for a blob's new state; None when nothing worth a line changed.
pub fn blob_line(b: &pb::BlobPushProgress) -> Option<String> {
    let short: String = b.digest.trim_start_matches("sha256:").chars().take(12).collect();
    let state = pb::BlobPushState::try_from(b.state).unwrap_or(pb::BlobPushState::Unspecified);
    let what = match state {
        pb::BlobPushState::Waiting => "preparing".to_string(),
        pb::BlobPushState::Pushing if b.done_bytes == 0 => format!("pushing ({})", human_size(b.total_bytes)),
        pb::BlobPushState::Pushing => format!("pushing {}/{}", human_size(b.done_bytes), human_size(b.total_bytes)),
        pb::BlobPushState::Pushed => format!("pushed ({})", human_size(b.total_bytes)),
        pb::BlobPushState::Exists => "layer already exists".to_string(),
        pb::BlobPushState::Mounted => format!("mounted from {}", b.mounted_from),
        pb::BlobPushState::Unspecified => return None,
    };
    Some(format!("{short}: {what}"))
}

pub async fn push(channel: Channel, args: PushArgs, timeout: Option<u64>) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.image).map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = args.creds.for_registry(&reference.registry);
    let mut client = ImagesClient::new(channel);
    let mut request = tonic::Request::new(pb::PushImageRequest {
        image: args.image.clone(),
        auth,
    });
    if let Some(t) = timeout {
        request.set_timeout(std::time::Duration::from_secs(t));
    }
    let mut stream = client.push_image(request).await.map_err(explain)?.into_inner();
    // The last line printed per blob: byte counts repeat only when they move on.
    let mut shown: HashMap<String, String> = HashMap::new();
    let mut done = None;
    while let Some(event) = stream.message().await.map_err(explain)? {
        match event.event {
            Some(pb::push_image_event::Event::Blob(b)) => {
                if let Some(line) = blob_line(&b).filter(|_| !args.quiet) {
                    if shown.get(&b.digest) != Some(&line) {
                        eprintln!("{line}");
                        shown.insert(b.digest.clone(), line);
                    }
                }
            }
            Some(pb::push_image_event::Event::Notice(text)) => eprintln!("berthctl: {text}"),
            Some(pb::push_image_event::Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    let pushed = done.ok_or_else(|| anyhow::anyhow!("berthd ended the push without a result"))?;
    if args.quiet {
        println!("{}@{}", reference.name(), pushed.digest);
    } else {
        println!("{}: digest: {} size: {}", pushed.tag, pushed.digest, pushed.size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: pb::BlobPushState, done: u64) -> pb::BlobPushProgress {
        pb::BlobPushProgress {
            digest: "sha256:0123456789abcdef0123".into(),
            total_bytes: 2_000_000,
            done_bytes: done,
            state: state as i32,
            mounted_from: "base/img".into(),
        }
    }

    #[test]
    fn blob_lines() {
        let line = |s, d| blob_line(&progress(s, d)).unwrap_or_default();
        assert_eq!(line(pb::BlobPushState::Exists, 0), "0123456789ab: layer already exists");
        assert_eq!(
            line(pb::BlobPushState::Mounted, 0),
            "0123456789ab: mounted from base/img"
        );
        assert!(line(pb::BlobPushState::Pushing, 1_000_000).starts_with("0123456789ab: pushing 1"));
        assert!(line(pb::BlobPushState::Pushed, 2_000_000).starts_with("0123456789ab: pushed ("));
        assert_eq!(blob_line(&progress(pb::BlobPushState::Unspecified, 0)), None);
    }

    #[test]
    fn flags_give_the_credentials() {
        let creds = CredsArgs {
            creds: Some("alice:pw".into()),
            auth: None,
            config: Some(std::path::PathBuf::from("/nonexistent/config.json")),
        };
        let auth = creds.for_registry("reg.example").expect("auth");
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("alice", "pw"));
        assert_eq!(auth.server_address, "reg.example");
        let none = CredsArgs { creds: None, ..creds };
        assert!(none.for_registry("reg.example").is_none());
    }
}
