//! `compose logs`: the services' CRI logs, each line prefixed with its container's name as
//! Docker Compose does (`web-1  | ...`); `-f` follows them all until each has exited.

use std::io::{Read as _, Seek as _, Write as _};
use std::time::Duration;

use berth_proto as pb;

use crate::logline::{lines, Joiner, Line};
use crate::Ctx;

struct Followed {
    prefix: String,
    path: std::path::PathBuf,
    offset: u64,
    joiner: Joiner,
    done: bool,
}

pub async fn show(ctx: &mut Ctx, targets: &[pb::Container], follow: bool) -> anyhow::Result<()> {
    let width = targets.iter().map(|c| super::name_of(c).len()).max().unwrap_or(0);
    let mut followed = Vec::new();
    for c in targets {
        let st = crate::containers::status(ctx, &c.id, false)
            .await?
            .status
            .unwrap_or_default();
        if st.log_path.is_empty() {
            continue;
        }
        followed.push((
            c.id.clone(),
            Followed {
                prefix: format!("{:width$}  | ", super::name_of(c)),
                path: st.log_path.into(),
                offset: 0,
                joiner: Joiner::default(),
                done: false,
            },
        ));
    }
    loop {
        for (id, f) in followed.iter_mut().filter(|(_, f)| !f.done) {
            // The state first: output written before an exit is then always read below.
            let exited = crate::containers::status(ctx, id, false)
                .await
                .map(|r| {
                    r.status
                        .is_none_or(|s| s.state == pb::ContainerState::ContainerExited as i32)
                })
                .unwrap_or(true);
            let mut out = Vec::new();
            if let Ok(mut file) = std::fs::File::open(&f.path) {
                if file.seek(std::io::SeekFrom::Start(f.offset)).is_ok() {
                    let mut buf = Vec::new();
                    file.read_to_end(&mut buf)?;
                    f.offset += lines(&buf, &mut f.joiner, &mut out) as u64;
                }
            }
            print(&f.prefix, &out)?;
            f.done = !follow || exited;
        }
        if followed.iter().all(|(_, f)| f.done) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print(prefix: &str, found: &[Line]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for l in found {
        out.write_all(prefix.as_bytes())?;
        out.write_all(&l.text)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
